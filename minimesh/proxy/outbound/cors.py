"""The route's `corsPolicy`: Envoy's CORS filter, before fault injection and routing on.

A request without `Origin` is not a CORS request and passes untouched. A
preflight — OPTIONS with `Access-Control-Request-Method` — from an allowed
origin is answered here, 200 with the policy's allow-* headers and max age,
and never reaches the app; from an origin not allowed it is forwarded
(Istio's default, `unmatchedPreflights: FORWARD`) or answered 200 without
any CORS header (`IGNORE`). Any other request from an allowed origin goes
on, and its response gains `Access-Control-Allow-Origin` (the origin
itself), `-Allow-Credentials` and `-Expose-Headers`.
"""

from __future__ import annotations

from typing import Awaitable

from multidict import CIMultiDict

from minimesh.config.cors import CorsPolicy
from minimesh.proxy.message import Request, Response, Service


def preflight_headers(policy: CorsPolicy, origin: str) -> CIMultiDict:
    headers = CIMultiDict({"access-control-allow-origin": origin, "content-length": "0"})
    if policy.allow_credentials:
        headers["access-control-allow-credentials"] = "true"
    if policy.allow_methods:
        headers["access-control-allow-methods"] = ",".join(policy.allow_methods)
    if policy.allow_headers:
        headers["access-control-allow-headers"] = ",".join(policy.allow_headers)
    if policy.max_age is not None:
        headers["access-control-max-age"] = str(policy.max_age)
    return headers


def add_response_headers(policy: CorsPolicy, origin: str, headers: CIMultiDict) -> None:
    headers["access-control-allow-origin"] = origin
    if policy.allow_credentials:
        headers["access-control-allow-credentials"] = "true"
    if policy.expose_headers:
        headers["access-control-expose-headers"] = ",".join(policy.expose_headers)


class Cors:
    """Layer: answer allowed preflights; mark allowed origins' responses."""

    def __init__(self, inner: Service):
        self.inner = inner

    def __call__(self, request: Request) -> Awaitable[Response]:
        policy = request.journey.http_route.cors_policy
        origin = request.headers.get("origin") if policy is not None else None
        if not origin:
            return self.inner(request)  # no CORS: the next layer's awaitable, no frame of ours
        return self._cors(request, policy, origin)

    async def _cors(self, request: Request, policy, origin: str) -> Response:
        allowed = policy.allows(origin)
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            if allowed:
                return Response(200, preflight_headers(policy, origin), b"")
            if not policy.forward_unmatched_preflights:
                return Response(200, CIMultiDict({"content-length": "0"}), b"")
            return await self.inner(request)
        response = await self.inner(request)
        if allowed:
            response.headers = CIMultiDict(response.headers)
            add_response_headers(policy, origin, response.headers)
        return response
