"""Circuit breaking (breaker.py): the pure decisions as tables, the waiting line with real asyncio tasks."""

import asyncio

import pytest
from multidict import CIMultiDict

from minimesh.config import ConnectionPool, RetryBudget, parse_resource
from minimesh.errors import Overflow
from minimesh.proxy.outbound.breaker import Admission, Breakers, CircuitBreak, ClusterBreaker, Counts, admit, may_retry
from minimesh.proxy.message import Journey, Request, Response
from minimesh.proxy.snapshot import Cluster

from .manifests import dr_doc

POOL = ConnectionPool(max_connections=2, http1_max_pending_requests=1)


@pytest.mark.parametrize("pool, counts, expected", [
    (None, Counts(10_000, 10_000), (Admission.ADMIT, None)),  # no connectionPool: unlimited, as Istio
    (POOL, Counts(1, 0), (Admission.ADMIT, None)),
    (POOL, Counts(2, 0), (Admission.QUEUE, None)),  # both connections busy: wait
    (POOL, Counts(2, 1), (Admission.OVERFLOW, "http1MaxPendingRequests")),  # and the line is full
    (ConnectionPool(max_connections=2), Counts(2, 500), (Admission.QUEUE, None)),  # pending unlimited
    (ConnectionPool(http2_max_requests=3), Counts(3, 0), (Admission.OVERFLOW, "http2MaxRequests")),
    (ConnectionPool(http2_max_requests=3, max_connections=1), Counts(1, 2), (Admission.OVERFLOW, "http2MaxRequests")),
    (ConnectionPool(http2_max_requests=3, max_connections=1), Counts(1, 1), (Admission.QUEUE, None)),
])
def test_admit(pool, counts, expected):
    assert admit(pool, counts) == expected


@pytest.mark.parametrize("pool, budget, counts, expected", [
    (None, None, Counts(retries=1000), (True, None)),
    (ConnectionPool(max_retries=2), None, Counts(retries=1), (True, None)),
    (ConnectionPool(max_retries=2), None, Counts(retries=2), (False, "maxRetries")),
    # A budget replaces maxRetries: 20 % of 100 outstanding requests = 20 retries at once.
    (ConnectionPool(max_retries=1), RetryBudget(20, 3), Counts(in_flight=100, retries=19), (True, None)),
    (None, RetryBudget(20, 3), Counts(in_flight=100, retries=20), (False, "retryBudget")),
    # ...but never fewer than minRetryConcurrency.
    (None, RetryBudget(20, 3), Counts(in_flight=1, retries=2), (True, None)),
    (None, RetryBudget(20, 3), Counts(in_flight=1, retries=3), (False, "retryBudget")),
])
def test_may_retry(pool, budget, counts, expected):
    assert may_retry(pool, budget, counts) == expected


async def test_the_waiting_line_hands_each_freed_connection_to_the_longest_waiter():
    breaker = ClusterBreaker("catalog")
    await breaker.enter(POOL)
    await breaker.enter(POOL)
    waiter = asyncio.create_task(breaker.enter(POOL))
    await asyncio.sleep(0)  # let it queue
    assert (breaker.counts.in_flight, breaker.counts.pending) == (2, 1)
    with pytest.raises(Overflow):  # one more: the line (1) is full
        await breaker.enter(POOL)
    breaker.leave()  # a connection frees up: the waiter gets it
    await waiter
    assert (breaker.counts.in_flight, breaker.counts.pending) == (2, 0)
    breaker.leave()
    breaker.leave()
    assert (breaker.counts.in_flight, breaker.counts.pending) == (0, 0)


async def test_a_cancelled_waiter_gives_up_its_place():
    breaker = ClusterBreaker("catalog")
    pool = ConnectionPool(max_connections=1)
    await breaker.enter(pool)
    waiter = asyncio.create_task(breaker.enter(pool))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    breaker.leave()
    assert (breaker.counts.in_flight, breaker.counts.pending) == (0, 0)


def cluster_with(pool_yaml: dict) -> Cluster:
    rule = parse_resource(dr_doc("catalog", [], traffic_policy={"connectionPool": pool_yaml}))
    return Cluster("catalog", None, (), policy=rule.policy_for(None))


async def test_the_layer_fails_fast_with_uo_naming_the_limit_and_counts_it():
    cluster = cluster_with({"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}})
    gate = asyncio.Event()

    async def slow(request):
        await gate.wait()
        return Response(200, CIMultiDict(), b"")

    breakers = Breakers()
    layer = CircuitBreak(slow, breakers)

    def request():
        return Request("GET", "/", "catalog", CIMultiDict(), journey=Journey("outbound", cluster=cluster))
    first, second = asyncio.create_task(layer(request())), asyncio.create_task(layer(request()))
    await asyncio.sleep(0)
    with pytest.raises(Overflow) as caught:  # the third: one in flight, one waiting — refused at once
        await layer(request())
    assert caught.value.flag == "UO" and caught.value.status == 503
    assert "http1MaxPendingRequests 1" in caught.value.reason and "tcp.maxConnections 1" in caught.value.reason
    gate.set()
    assert [r.status for r in await asyncio.gather(first, second)] == [200, 200]
    assert breakers.overflows == {("catalog", "", "http1MaxPendingRequests"): 1}
