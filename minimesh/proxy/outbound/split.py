"""Weighted destinations: the traffic split behind canaries and blue/green.

A route lists destinations with weights; each request picks one at random in
proportion to its weight (Envoy's weighted clusters). The choice is made once
per request — retries stay on the destination picked here, as in Envoy.
"""

from __future__ import annotations

import random
from typing import Awaitable

from minimesh.config.virtualservice import SERVICE_PORT
from minimesh.errors import NoCluster, NoHealthyUpstream
from minimesh.proxy.message import Request, Response, Service


def pick_destination(destinations, rand: random.Random = random):
    """Choose one of (destination, weight) entries by weight; zero weights never win."""
    total = sum(d.weight for d in destinations)
    if total <= 0:
        return destinations[0] if len(destinations) == 1 else None
    point = rand.random() * total
    for d in destinations:
        point -= d.weight
        if point < 0 and d.weight > 0:
            return d
    return next(d for d in reversed(destinations) if d.weight > 0)


class SplitTraffic:
    """Layer: pick the route's destination, then the cluster (service + subset) it names."""

    def __init__(self, inner: Service, rand: random.Random = random):
        self.inner = inner
        self.rand = rand

    def __call__(self, request: Request) -> Awaitable[Response]:
        journey = request.journey
        chosen = pick_destination(journey.http_route.route, self.rand)
        if chosen is None:
            raise NoHealthyUpstream(f"route {journey.route} gives every destination weight 0")
        dest = chosen.destination
        journey.destination_headers = chosen.headers
        cluster = journey.config.cluster(dest.host, dest.subset)
        if dest.port is not None and dest.port != SERVICE_PORT:
            # A port the service does not have names a cluster that does not exist (Envoy: 503 NC).
            raise NoCluster(f"service {dest.host} has no port {dest.port} (minimesh services answer on "
                            f"{SERVICE_PORT} only)")
        if cluster is None:
            what = f"subset {dest.subset!r} of {dest.host}" if dest.subset else f"service {dest.host}"
            # As Envoy: a route to a cluster that does not exist answers 503 NC (istioctl analyze: IST0101).
            raise NoCluster(f"{what} is not known to the mesh (no DestinationRule defines that subset, "
                            "or the service has no instances)")
        journey.cluster = cluster
        journey.service = journey.service or dest.host  # at the gateway, the route decides the service
        journey.subset = dest.subset
        return self.inner(request)  # nothing to do on the way back: no frame of ours
