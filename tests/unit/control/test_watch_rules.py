"""The watch's pure decisions, the ACK/NACK state table, the snapshot's endpoints, the change feed."""

import asyncio

import pytest

from minimesh.control.acks import AckState, record
from minimesh.control.registry import Instance, parse_registration
from minimesh.control.snapshot import endpoints_by_service, snapshot_version
from minimesh.control.watch import ChangeFeed, held_for_warmup, should_answer


@pytest.mark.parametrize("elapsed, client_version, held", [
    (0.5, "", False),          # a fresh sidecar has nothing to lose: answer at once
    (0.5, "3.ab.7", True),     # a sidecar with config waits for the registry to refill
    (2.0, "3.ab.7", False),    # warm-up over
    (5.0, "3.ab.7", False),
])
def test_warmup_holds_only_nodes_that_already_have_a_version(elapsed, client_version, held):
    assert held_for_warmup(now=100.0 + elapsed, started_at=100.0, warmup=2.0, client_version=client_version) is held


@pytest.mark.parametrize("current, client, held, answer", [
    ("1.a.1", "", False, True),
    ("1.a.1", "1.a.1", False, False),
    ("1.a.2", "1.a.1", False, True),
    ("1.a.2", "1.a.1", True, False),
])
def test_should_answer(current, client, held, answer):
    assert should_answer(current, client, held) is answer


@pytest.mark.parametrize("events, expected", [
    ([("v1", None)], AckState(acked_version="v1")),
    ([("v1", None), ("v2", "bad regex")], AckState("v1", "v2", "bad regex")),
    ([("v1", None), ("v2", "bad regex"), ("v3", None)], AckState(acked_version="v3")),
    ([("v1", "boom")], AckState(None, "v1", "boom")),
])
def test_ack_nack_state(events, expected):
    state = AckState()
    for version, error in events:
        state = record(state, version, error)
    assert state == expected


def test_snapshot_version_is_made_of_its_three_parts():
    assert snapshot_version(4, "beef", 9) == "4.beef.9"
    assert snapshot_version(4, "beef", 9) != snapshot_version(4, "cafe", 9)


def _inst(name, kind="sidecar", inbound="127.0.0.1:1", service="catalog"):
    reg = parse_registration({"service": service, "version": "v1", "instance": name, "kind": kind,
                              "addresses": {"inbound": inbound, "admin": "127.0.0.1:2"}})
    return Instance(reg, registered_at=0.0, last_seen=0.0)


def test_only_sidecars_with_an_inbound_are_endpoints():
    services = endpoints_by_service([
        _inst("catalog-1"), _inst("catalog-0"), _inst("gw", kind="gateway", service="gateway"),
        _inst("starting", inbound=None)])
    assert services == {"catalog": {"endpoints": [
        {"instance": "catalog-0", "address": "127.0.0.1:1", "labels": {"app": "catalog", "version": "v1"}},
        {"instance": "catalog-1", "address": "127.0.0.1:1", "labels": {"app": "catalog", "version": "v1"}},
    ]}}


async def test_change_feed_wakes_waiters_without_polling():
    feed = ChangeFeed()
    state = {"version": 1}
    waiter = asyncio.create_task(feed.wait_until(lambda: state["version"] == 2, timeout=5))
    await asyncio.sleep(0)
    feed.notify()  # a change that is not the one awaited: the waiter re-checks and sleeps again
    await asyncio.sleep(0)
    assert not waiter.done()
    state["version"] = 2
    feed.notify()
    assert await asyncio.wait_for(waiter, 1) is True


async def test_change_feed_times_out_false():
    assert await ChangeFeed().wait_until(lambda: False, timeout=0.05) is False
