"""Load balancing: which endpoint of a cluster gets this attempt.

Three policies, named as in Istio's `DestinationRule.trafficPolicy.loadBalancer.simple`:

- ROUND_ROBIN walks the endpoints in turn. Fair in count, blind to speed: a
  slow endpoint gets its full share and the requests queue up on it.
- RANDOM picks uniformly. No shared state at all, and over many requests as
  fair as round robin.
- LEAST_REQUEST (Istio's default) is "the power of two choices": pick two
  endpoints at random and send to the one with fewer requests in flight. It
  needs no global view, yet a slow endpoint — whose requests pile up in flight
  — quickly loses almost every comparison. (Mitzenmacher showed that two
  random choices already get most of the benefit of checking them all.)
  Note that with one request at a time nothing is ever in flight, so the
  choice is random: least-request only shows its worth under concurrency.

On a retry, Istio tells Envoy to avoid the endpoints already tried
(`previous_hosts` retry predicate) when there is any other to choose.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

from minimesh.errors import NoHealthyUpstream
from minimesh.proxy.message import Request, Response, Service


class InFlight:
    """Requests currently in flight per endpoint address, shared by every cluster."""

    def __init__(self):
        self.counts: dict[str, int] = defaultdict(int)

    def start(self, address: str) -> None:
        self.counts[address] += 1

    def finish(self, address: str) -> None:
        self.counts[address] -= 1


def pick_endpoint(policy: str, endpoints, *, in_flight: dict, turn: int, rand=random):
    """Pure choice of one endpoint by `policy`; `turn` is the round-robin counter."""
    if len(endpoints) == 1:
        return endpoints[0]
    if policy == "ROUND_ROBIN":
        return endpoints[turn % len(endpoints)]
    if policy == "RANDOM":
        return rand.choice(endpoints)
    a, b = rand.sample(endpoints, 2)
    load_a, load_b = in_flight.get(a.address, 0), in_flight.get(b.address, 0)
    return a if load_a <= load_b else b  # the sample order already breaks ties at random


class Balance:
    """Layer: choose the endpoint for this attempt and count it in flight."""

    def __init__(self, inner: Service, in_flight: InFlight, rand: random.Random = random):
        self.inner = inner
        self.in_flight = in_flight
        self.rand = rand
        self.turns: dict[str, itertools.count] = defaultdict(itertools.count)

    async def __call__(self, request: Request) -> Response:
        journey = request.journey
        cluster = journey.cluster
        endpoints = cluster.endpoints
        if not endpoints:
            raise NoHealthyUpstream(f"no healthy endpoint for {cluster.name}")
        tried = {a.endpoint for a in journey.attempts}
        fresh = [e for e in endpoints if e.address not in tried] if tried else endpoints
        endpoint = pick_endpoint(cluster.load_balancer, fresh or endpoints,
                                 in_flight=self.in_flight.counts,
                                 turn=next(self.turns[cluster.name]), rand=self.rand)
        journey.endpoint = endpoint.address
        journey.endpoint_instance = endpoint.instance
        self.in_flight.start(endpoint.address)
        try:
            return await self.inner(request)
        finally:
            self.in_flight.finish(endpoint.address)
