"""Routes the proxy answers itself: `redirect` and `directResponse`.

A redirect answers `redirectCode` (301 unless set) with a Location built
from the request — scheme, Host and path — with the parts the redirect
names swapped in: `uri` replaces the whole path and the query stays unless
the new uri brings its own; `authority` replaces the host; `port` the port;
a `scheme` change drops the old scheme's default port (Envoy). A
directResponse answers `status` with its body, `content-type: text/plain`
when there is one (Envoy's local reply). Neither reaches an upstream, and
neither is an error: no response flag.
"""

from __future__ import annotations

from typing import Awaitable

from multidict import CIMultiDict

from minimesh.config.redirect import HTTPDirectResponse, HTTPRedirect
from minimesh.config.rewrite import HTTPRewrite
from minimesh.proxy.outbound.header_ops import apply_operations
from minimesh.proxy.outbound.rewrite import rewrite_path
from minimesh.proxy.message import Request, Response, Service

_DEFAULT_PORT = {"http": "80", "https": "443"}


def location(redirect: HTTPRedirect, request: Request, match=None) -> str:
    """The Location header for `request` under `redirect` (`match`: the entry that chose the route)."""
    old_scheme = (request.headers.get("x-forwarded-proto") or "http").lower()
    scheme = redirect.scheme or old_scheme
    host = redirect.authority if redirect.authority is not None else request.authority
    name, sep, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    if redirect.port is not None:
        port = str(redirect.port)
    elif redirect.derive_port == "FROM_PROTOCOL_DEFAULT":
        port = ""  # no port in the Location: the scheme's default
    elif scheme != old_scheme and port == _DEFAULT_PORT.get(old_scheme) and redirect.derive_port is None:
        port = ""
    host = f"{name}:{port}" if port else name
    path, query = request.path.partition("?")[::2]
    if redirect.prefix_rewrite is not None:
        path, query = rewrite_path(HTTPRewrite(uri=redirect.prefix_rewrite), match, request.path).partition("?")[::2]
    if redirect.uri is not None:
        path = redirect.uri
        if "?" in redirect.uri:
            query = ""
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def redirect_response(redirect: HTTPRedirect, request: Request) -> Response:
    where = location(redirect, request, request.journey.http_match)
    return Response(redirect.redirect_code, CIMultiDict({"location": where,
                                                         "content-length": "0"}), b"")


def direct_response(answer: HTTPDirectResponse) -> Response:
    headers = CIMultiDict({"content-length": str(len(answer.body or b""))})
    if answer.body:
        headers["content-type"] = "text/plain"
    return Response(answer.status, headers, answer.body or b"")


class AnswerLocally:
    """Layer: a redirect or directResponse route is answered here; any other goes on inwards."""

    def __init__(self, inner: Service):
        self.inner = inner

    def __call__(self, request: Request) -> Awaitable[Response]:
        route = request.journey.http_route
        if route.redirect is None and route.direct_response is None:
            return self.inner(request)  # the next layer's awaitable, no frame of ours
        return self._answer(request, route)

    async def _answer(self, request: Request, route) -> Response:
        if route.redirect is not None:
            response = redirect_response(route.redirect, request)
        elif route.direct_response is not None:
            response = direct_response(route.direct_response)
        else:
            return await self.inner(request)
        if route.headers is not None:  # Envoy adds the route's response headers to its local replies too
            apply_operations(response.headers, route.headers.response)
        return response
