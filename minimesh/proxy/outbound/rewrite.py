"""The route's `rewrite`: the path and Host the upstream sees, as Envoy rewrites them.

Routing is decided by then; only what goes on the wire changes. `uri` is
Envoy's `prefix_rewrite`: the part of the path the matching `uri` entry
matched is swapped (a prefix match: that prefix; an exact match: the whole
path; no uri match: Istio's implied prefix `/`), the rest and the query
kept. `uriRegexRewrite` is Envoy's `regex_rewrite`: every match of the
regex in the path — not the query — replaced. `authority` replaces Host.
"""

from __future__ import annotations

from typing import Awaitable

from minimesh.config import HTTPMatchRequest
from minimesh.config.rewrite import HTTPRewrite
from minimesh.proxy.message import Request, Response, Service


def rewrite_path(rewrite: HTTPRewrite, match: HTTPMatchRequest | None, path: str) -> str:
    """The path (with its query) after `rewrite`, given the match entry that chose the route."""
    if rewrite.pattern is not None:
        bare, mark, query = path.partition("?")
        return rewrite.pattern.sub(rewrite.uri_regex_replacement, bare) + mark + query
    if rewrite.uri is None:
        return path
    uri = match.uri if match else None
    if uri is not None and uri.kind == "exact":
        bare, mark, query = path.partition("?")
        return rewrite.uri + mark + query
    if uri is not None and uri.kind == "regex":
        # Envoy's prefix_rewrite beside a regex match swaps the whole path, as for an exact one.
        bare, mark, query = path.partition("?")
        return rewrite.uri + mark + query
    prefix = uri.value if uri is not None else "/"
    return rewrite.uri + path[len(prefix):]


class Rewrite:
    """Layer: apply the route's rewrite to the request before it is mirrored, split and sent."""

    def __init__(self, inner: Service):
        self.inner = inner

    def __call__(self, request: Request) -> Awaitable[Response]:
        journey = request.journey
        rewrite = journey.http_route.rewrite
        if rewrite is not None:
            request.path = rewrite_path(rewrite, journey.http_match, request.path)
            if rewrite.authority is not None:
                rewrite_authority(request, rewrite.authority)
        return self.inner(request)  # nothing to do on the way back: no frame of ours


def rewrite_authority(request: Request, authority: str) -> None:
    """Send the request to `authority`: its Host, as Envoy's host_rewrite_literal does."""
    request.authority = authority
    request.headers["host"] = authority
