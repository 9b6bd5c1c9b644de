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

With `consistentHash` the endpoint is chosen on a hash ring instead
(ringhash.py), and with `warmup` a newly joined endpoint gets a growing
share. Endpoints that outlier detection ejected (outlier.py) are left out
before any choice is made.

On a retry, Istio tells Envoy to avoid the endpoints already tried
(`previous_hosts` retry predicate) when there is any other to choose —
unless the route's `retries.retryIgnorePreviousHosts` is false.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import defaultdict

from minimesh.errors import NoHealthyUpstream
from minimesh.proxy.message import Request, Response, Service
from minimesh.proxy.outbound.ringhash import hash64, hash_key, ring_pick, warmup_factor


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

    def __init__(self, inner: Service, in_flight: InFlight, rand: random.Random = random, outliers=None,
                 clock=time.monotonic):
        self.inner = inner
        self.in_flight = in_flight
        self.rand = rand
        self.outliers = outliers  # outlier.Outliers: who is ejected now
        self.clock = clock
        self.turns: dict[str, itertools.count] = defaultdict(itertools.count)
        self.first_seen: dict[str, float] = {}  # endpoint address -> when this sidecar first saw it (slow start)
        self.known_clusters: set[str] = set()

    async def __call__(self, request: Request) -> Response:
        journey = request.journey
        cluster = journey.cluster
        endpoints = cluster.endpoints
        if not endpoints:
            raise NoHealthyUpstream(f"no healthy endpoint for {cluster.name}")
        if self.outliers is not None:
            endpoints = self.outliers.healthy(cluster, endpoints)
            if not endpoints:
                raise NoHealthyUpstream(f"every endpoint of {cluster.name} is ejected by outlier detection "
                                        f"(minHealthPercent would send to them anyway: panic mode)")
        avoid = journey.http_route is None or journey.http_route.retry_policy.ignore_previous_hosts
        # The attempt being made has no endpoint yet: on a first try nothing was tried, no list to filter.
        tried = {a.endpoint for a in journey.attempts if a.endpoint} if avoid else ()
        fresh = [e for e in endpoints if e.address not in tried] if tried else endpoints
        candidates = fresh or endpoints
        lb = cluster.policy.load_balancer if cluster.policy is not None else None
        set_cookie = None
        if lb is not None and lb.consistent_hash is not None:
            endpoint, set_cookie = self._hash_pick(request, lb.consistent_hash, candidates)
        elif lb is not None and lb.warmup is not None and self._warming(cluster, candidates, lb):
            endpoint = self._warm_pick(candidates, lb)
        else:
            endpoint = pick_endpoint(cluster.load_balancer, candidates, in_flight=self.in_flight.counts,
                                     turn=next(self.turns[cluster.name]), rand=self.rand)
        journey.endpoint = endpoint.address
        journey.endpoint_instance = endpoint.instance
        self.in_flight.start(endpoint.address)
        try:
            response = await self.inner(request)
        finally:
            self.in_flight.finish(endpoint.address)
        if set_cookie is not None:
            response.headers.add("set-cookie", set_cookie)
        return response

    def _hash_pick(self, request: Request, policy, candidates):
        journey = request.journey
        cookie = None
        if journey.hash_key is None:
            journey.hash_key, cookie = hash_key(policy, request.path, request.headers, request.client)
        if journey.hash_key is None:
            return self.rand.choice(candidates), None  # no key: Envoy picks at random
        address = ring_pick(tuple(sorted(e.address for e in candidates)), policy.minimum_ring_size,
                            hash64(journey.hash_key))
        return next(e for e in candidates if e.address == address), cookie

    def _warming(self, cluster, candidates, lb) -> bool:
        now = self.clock()
        if cluster.name not in self.known_clusters:  # there from the start: warm already (as Envoy)
            self.known_clusters.add(cluster.name)
            for e in cluster.endpoints:
                self.first_seen.setdefault(e.address, float("-inf"))
        for e in candidates:
            self.first_seen.setdefault(e.address, now)
        return any(now - self.first_seen[e.address] < lb.warmup for e in candidates)

    def _warm_pick(self, candidates, lb):
        """While an endpoint warms up, choose in proportion to each endpoint's warm-up factor."""
        now = self.clock()
        weights = [warmup_factor(now - self.first_seen[e.address], lb.warmup, lb.warmup_min_percent,
                                 lb.warmup_aggression) for e in candidates]
        return self.rand.choices(candidates, weights=weights)[0]
