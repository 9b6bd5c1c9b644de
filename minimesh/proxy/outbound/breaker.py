"""Circuit breaking: limits on what one sidecar may have outstanding to one destination.

Theory of operation. Envoy's "circuit breakers" are not the open/half-open
switch of Nygard's book: they are thresholds, counted per upstream cluster
(a service, or a subset of it) by each calling proxy, and checked the moment
a request or a retry wants to start. Istio sets them from a DestinationRule's
`trafficPolicy.connectionPool` and `retryBudget`:

    tcp.maxConnections            connections to the destination. HTTP/1.1 carries one request
                                  at a time on a connection, so this bounds the requests in
                                  flight; the next ones wait for a connection ("pending")
    http.http1MaxPendingRequests  requests allowed to wait for a connection; one more -> 503 UO
    http.http2MaxRequests         requests outstanding (in flight + pending); one more -> 503 UO
    http.maxRetries               retries outstanding at once; one more -> no retry, flag UO
    retryBudget                   instead of maxRetries: retries may be `percent` % of the
                                  outstanding requests, but at least `minRetryConcurrency`

An overflow never queues and never waits: the point of a breaker is to fail
fast — a 503 with flag UO in microseconds, instead of piling requests onto an
upstream that cannot keep up (and tying up the caller's workers while they
wait). Without a connectionPool block every limit is unlimited, as in Istio
(which sets Envoy's thresholds to 2^32-1).

The decisions (`admit`, `may_retry`) are pure functions of the limits and
the counts; `ClusterBreaker` holds the counts and the queue of waiters, and
`CircuitBreak` is the layer.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass
from enum import Enum

from minimesh.config import ConnectionPool, RetryBudget
from minimesh.errors import Overflow
from minimesh.proxy.message import Request, Response, Service


@dataclass
class Counts:
    in_flight: int = 0  # requests holding a connection
    pending: int = 0  # requests waiting for one
    retries: int = 0  # retries outstanding


class Admission(Enum):
    ADMIT = "admit"  # a connection is free: go
    QUEUE = "queue"  # every connection is busy: wait as a pending request
    OVERFLOW = "overflow"  # a limit is reached: 503 UO now


def admit(pool: ConnectionPool | None, counts: Counts) -> tuple[Admission, str | None]:
    """May a new request start? Returns the decision and, for OVERFLOW, the limit that refused it."""
    if pool is None:
        return Admission.ADMIT, None
    if pool.http2_max_requests is not None and counts.in_flight + counts.pending >= pool.http2_max_requests:
        return Admission.OVERFLOW, "http2MaxRequests"
    if pool.max_connections is None or counts.in_flight < pool.max_connections:
        return Admission.ADMIT, None
    if pool.http1_max_pending_requests is not None and counts.pending >= pool.http1_max_pending_requests:
        return Admission.OVERFLOW, "http1MaxPendingRequests"
    return Admission.QUEUE, None


def may_retry(pool: ConnectionPool | None, budget: RetryBudget | None, counts: Counts) -> tuple[bool, str | None]:
    """May one more retry start? A retry budget, when set, replaces maxRetries (as in Envoy)."""
    if budget is not None:
        allowed = max(budget.min_retry_concurrency, budget.percent / 100 * (counts.in_flight + counts.pending))
        return (counts.retries < allowed, None if counts.retries < allowed else "retryBudget")
    if pool is not None and pool.max_retries is not None and counts.retries >= pool.max_retries:
        return False, "maxRetries"
    return True, None


def describe(limit: str, pool: ConnectionPool | None, budget: RetryBudget | None, cluster: str) -> str:
    """One sentence for x-minimesh-error: which limit, its value, and what it counts."""
    if limit == "http2MaxRequests":
        return (f"connectionPool.http.http2MaxRequests {pool.http2_max_requests} reached: that many requests "
                f"to {cluster} are already in flight or waiting")
    if limit == "http1MaxPendingRequests":
        return (f"connectionPool.http.http1MaxPendingRequests {pool.http1_max_pending_requests} reached: "
                f"every one of tcp.maxConnections {pool.max_connections} connections to {cluster} is busy "
                f"and the waiting line is full")
    if limit == "maxRetries":
        return f"connectionPool.http.maxRetries {pool.max_retries} reached: no more retries to {cluster} at once"
    return (f"retryBudget ({budget.percent:g} % of outstanding requests, at least {budget.min_retry_concurrency}) "
            f"spent: no more retries to {cluster} at once")


class ClusterBreaker:
    """The counts and waiting line of one destination cluster, on this sidecar."""

    def __init__(self, name: str):
        self.name = name
        self.counts = Counts()
        self._waiters: deque[asyncio.Future] = deque()

    async def enter(self, pool: ConnectionPool | None) -> None:
        if not self.enter_now(pool):
            await self.wait_for_slot()

    def enter_now(self, pool: ConnectionPool | None) -> bool:
        """Take a slot at once (True), or False when the request must wait as pending (`wait_for_slot`).

        Overflow when it may not even wait. Most requests take their slot here,
        without a coroutine of their own.
        """
        decision, limit = admit(pool, self.counts)
        if decision is Admission.OVERFLOW:
            raise Overflow(limit)  # the layer words it
        if decision is Admission.ADMIT:
            self.counts.in_flight += 1
            return True
        return False

    async def wait_for_slot(self) -> None:
        """Wait as pending until leave() hands this request a connection's slot."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.counts.pending += 1
        try:
            await waiter  # handed a connection's slot by leave()
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # handed the slot just as we were cancelled: pass it on
            raise
        finally:
            self.counts.pending -= 1
        # The slot was handed over: in_flight already counts us.

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # our slot goes to the longest waiter; in_flight stays
                return
        self.counts.in_flight -= 1


class Breakers:
    """Every destination's breaker on this sidecar, and the overflow counts /metrics and stat show."""

    def __init__(self):
        self.clusters: dict[str, ClusterBreaker] = {}
        # (destination_service, destination_subset, limit) -> overflows (minimesh_upstream_overflow_total)
        self.overflows: Counter = Counter()

    def of(self, cluster) -> ClusterBreaker:
        breaker = self.clusters.get(cluster.name)
        if breaker is None:
            breaker = self.clusters[cluster.name] = ClusterBreaker(cluster.name)
        return breaker

    def overflowed(self, cluster, limit: str) -> None:
        self.overflows[(cluster.service, cluster.subset or "", limit)] += 1

    def try_retry(self, cluster) -> tuple[bool, str | None]:
        """Reserve a retry slot if the destination's limits allow; release it with `retry_done`."""
        policy = cluster.policy
        ok, limit = may_retry(policy.connection_pool if policy else None, policy.retry_budget if policy else None,
                              self.of(cluster).counts)
        if ok:
            self.of(cluster).counts.retries += 1
        else:
            self.overflowed(cluster, limit)
        return ok, limit

    def as_json(self) -> dict:
        """For the admin /stats: each destination's counts now, and every overflow so far."""
        return {"clusters": {name: vars(b.counts) for name, b in sorted(self.clusters.items())},
                "overflows": [{"service": s, "subset": sub or None, "limit": limit, "count": n}
                              for (s, sub, limit), n in sorted(self.overflows.items())]}

    def retry_done(self, cluster) -> None:
        self.of(cluster).counts.retries -= 1


class CircuitBreak:
    """Layer: take a connection slot for this attempt, wait as pending, or fail fast with 503 UO."""

    def __init__(self, inner: Service, breakers: Breakers):
        self.inner = inner
        self.breakers = breakers

    async def __call__(self, request: Request) -> Response:
        cluster = request.journey.cluster
        pool = cluster.policy.connection_pool if cluster.policy is not None else None
        breaker = self.breakers.of(cluster)
        try:
            if not breaker.enter_now(pool):
                await breaker.wait_for_slot()
        except Overflow as e:
            limit = e.reason
            self.breakers.overflowed(cluster, limit)
            raise Overflow(describe(limit, pool, None, cluster.name)) from None
        try:
            return await self.inner(request)
        finally:
            breaker.leave()
