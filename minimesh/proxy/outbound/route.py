"""Route matching: which VirtualService http route a request takes.

Istio evaluates a VirtualService's `http` routes in order and takes the first
whose `match` list has any entry that matches (the entries of one `match` are
ORed; the conditions inside one entry — uri, headers, method — are ANDed). A
host with no VirtualService gets the default route: all of its endpoints, with
Istio's default retry policy. A VirtualService that matches nothing is a 404
with the NR ("no route") flag.
"""

from __future__ import annotations

from minimesh.config import Destination, HTTPRoute, HTTPRouteDestination, VirtualService
from minimesh.errors import NoRoute
from minimesh.proxy.message import Request, Response, Service


def default_route(service: str) -> HTTPRoute:
    """What a host without a VirtualService gets: itself, whole, retried Istio's way."""
    return HTTPRoute(name="default", match=(), route=(HTTPRouteDestination(Destination(service, None), 100),))


def match_route(vs: VirtualService | None, service: str, method: str, path: str, headers):
    """The first http route of `vs` that matches, the default route without one, or None."""
    if vs is None:
        return default_route(service)
    for route in vs.http:
        if not route.match or any(m.matches(method, path, headers) for m in route.match):
            return route
    return None


class MatchRoute:
    """Layer: pick the http route; the layers inside read it from the journey."""

    def __init__(self, inner: Service):
        self.inner = inner

    async def __call__(self, request: Request) -> Response:
        journey = request.journey
        if journey.no_route:  # at the gateway: no Gateway server or bound VirtualService serves the Host
            raise NoRoute(journey.no_route)
        vs = journey.virtual_service or journey.config.virtual_services.get(journey.service)
        route = match_route(vs, journey.service, request.method, request.path, request.headers)
        if route is None:
            raise NoRoute(f"no http route of VirtualService {vs.name} matches "
                          f"{request.method} {request.path}")
        journey.http_route = route
        journey.route = route.name or f"{vs.name}[{vs.http.index(route)}]"
        return await self.inner(request)
