"""Route matching: which VirtualService http route a request takes.

Istio evaluates a VirtualService's `http` routes in order and takes the first
whose `match` list has any entry that matches (the entries of one `match` are
ORed; the conditions inside one entry — uri, headers, method — are ANDed). A
host with no VirtualService gets the default route: all of its endpoints, with
Istio's default retry policy. A VirtualService that matches nothing is a 404
with the NR ("no route") flag.

Besides the request itself, a match may look at who is calling
(`sourceLabels`: this proxy's own workload labels) and at the port the
request was addressed to (`port`: the Host's port, 80 when it names none).
"""

from __future__ import annotations

import functools
from typing import Awaitable

from minimesh.config import Destination, HTTPRoute, HTTPRouteDestination, VirtualService
from minimesh.errors import NoRoute
from minimesh.proxy.message import Request, Response, Service


@functools.lru_cache(maxsize=1024)
def default_route(service: str) -> HTTPRoute:
    """What a host without a VirtualService gets: itself, whole, retried Istio's way.

    Immutable, so made once per service rather than once per request.
    """
    return HTTPRoute(name="default", match=(), route=(HTTPRouteDestination(Destination(service, None), 100),))


def match_route(vs: VirtualService | None, service: str, method: str, path: str, headers,
                source_labels=None, port: int | None = None):
    """The first http route of `vs` that matches, the default route without one, or None."""
    found = match_route_entry(vs, service, method, path, headers, source_labels, port)
    return found[0] if found is not None else None


def match_route_entry(vs: VirtualService | None, service: str, method: str, path: str, headers,
                      source_labels=None, port: int | None = None):
    """(route, the match entry that fitted or None) — or None when no route matches."""
    if vs is None:
        return default_route(service), None
    for route in vs.http:
        entry = route.matching(method, path, headers, source_labels, port)
        if entry is not None:
            return route, entry or None
    return None


def addressed_port(authority: str) -> int:
    """The port a request was sent to: the Host's, or HTTP's 80."""
    _, colon, port = authority.rpartition(":") if authority.count(":") == 1 else ("", "", "")
    return int(port) if colon and port.isdigit() else 80


class MatchRoute:
    """Layer: pick the http route; the layers inside read it from the journey."""

    def __init__(self, inner: Service, labels=None):
        self.inner = inner
        self.labels = dict(labels or {})  # this proxy's workload labels, for `sourceLabels`

    def __call__(self, request: Request) -> Awaitable[Response]:
        journey = request.journey
        if journey.no_route:  # at the gateway: no Gateway server or bound VirtualService serves the Host
            raise NoRoute(journey.no_route)
        vs = journey.virtual_service or journey.config.virtual_services.get(journey.service)
        found = match_route_entry(vs, journey.service, request.method, request.path, request.headers,
                                  self.labels, addressed_port(request.authority) if vs is not None else None)
        route, journey.http_match = found if found is not None else (None, None)
        if route is None:
            raise NoRoute(f"no http route of VirtualService {vs.name} matches "
                          f"{request.method} {request.path}")
        journey.http_route = route
        journey.route = route.name or f"{vs.name}[{vs.http.index(route)}]"
        return self.inner(request)  # nothing to do on the way back: no frame of ours
