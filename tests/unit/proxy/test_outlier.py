"""Outlier detection (outlier.py) with a stepped clock: ejection, return after base x n, the caps."""

import pytest

from minimesh.config import OutlierDetection, parse_resource
from minimesh.proxy.outbound.outlier import (TRANSITIONS, Detector, Host, Outliers, State, count, in_panic,
                                             departed, may_eject, stale)
from minimesh.proxy.snapshot import Cluster, Endpoint, MeshConfig

from .manifests import dr_doc


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def cluster(n=3, service="catalog", lb=None, **outlier) -> Cluster:
    rule = parse_resource(dr_doc(service, [], lb=lb, traffic_policy={"outlierDetection": outlier} if outlier else None))
    endpoints = tuple(Endpoint(f"{service}-v1-{i}", f"127.0.0.1:{7000 + i}") for i in range(n))
    return Cluster(service, None, endpoints, policy=rule.policy_for(None))


def test_the_state_machine_is_a_table():
    assert TRANSITIONS == {(State.HEALTHY, "threshold"): State.EJECTED, (State.EJECTED, "time_up"): State.HEALTHY}


@pytest.mark.parametrize("policy, outcomes, reached", [
    (OutlierDetection(consecutive_5xx_errors=3), [500, 503, 502], "consecutive5xxErrors 3"),
    (OutlierDetection(consecutive_5xx_errors=3), [500, 200, 503, 502], None),  # a success resets
    (OutlierDetection(consecutive_5xx_errors=0, consecutive_gateway_errors=2), [500, 500, 500], None),
    (OutlierDetection(consecutive_5xx_errors=0, consecutive_gateway_errors=2), [502, 504], "consecutiveGatewayErrors 2"),
    # Without the split, a connect failure counts as a 503 (Envoy's mapping)...
    (OutlierDetection(consecutive_5xx_errors=2), ["connect-failure", "reset"], "consecutive5xxErrors 2"),
    # ...with it, only toward consecutiveLocalOriginFailures.
    (OutlierDetection(consecutive_5xx_errors=2, split_external_local_origin_errors=True,
                      consecutive_local_origin_failures=3), ["connect-failure", "reset"], None),
    (OutlierDetection(consecutive_5xx_errors=2, split_external_local_origin_errors=True,
                      consecutive_local_origin_failures=3), ["connect-failure", "timeout", "reset"],
     "consecutiveLocalOriginFailures 3"),
    (OutlierDetection(consecutive_5xx_errors=2, split_external_local_origin_errors=True,
                      consecutive_local_origin_failures=3), [503, "connect-failure", 503], "consecutive5xxErrors 2"),
])
def test_count(policy, outcomes, reached):
    host, result = Host(), None
    for outcome in outcomes:
        status, failure = (outcome, None) if isinstance(outcome, int) else (None, outcome)
        result = count(policy, host, status, failure)
    assert result == reached


@pytest.mark.parametrize("percent, ejected, total, expected", [
    (10, 0, 3, True),  # Envoy always allows one ejection, whatever the percentage
    (10, 1, 3, False), (50, 1, 4, True), (50, 2, 4, False), (100, 2, 3, True),
])
def test_max_ejection_percent(percent, ejected, total, expected):
    assert may_eject(OutlierDetection(max_ejection_percent=percent), ejected, total) is expected


@pytest.mark.parametrize("percent, healthy, total, expected", [
    (0, 0, 3, False),  # Istio's default 0: never panic
    (50, 1, 3, True), (50, 2, 3, False), (100, 2, 3, True),
])
def test_min_health_percent_panics(percent, healthy, total, expected):
    assert in_panic(OutlierDetection(min_health_percent=percent), healthy, total) is expected


def test_eject_then_return_after_base_times_ejections():
    clock, events = Clock(), []
    outliers = Outliers(clock=clock, emit=events.append)
    c = cluster(consecutive5xxErrors=1, interval="1s", baseEjectionTime="10s")
    bad = c.endpoints[0]

    # One 5xx: ejected for 10 s (first ejection).
    outliers.observe(c, bad, 503, None)
    assert [e.address for e in outliers.healthy(c, c.endpoints)] == [c.endpoints[1].address, c.endpoints[2].address]
    assert events[-1]["event"] == "outlier_ejected" and events[-1]["reason"] == "consecutive5xxErrors 1"
    assert outliers.active() == {("catalog", ""): 1}
    clock.now += 9.5
    assert bad not in outliers.healthy(c, c.endpoints)
    clock.now += 1.0  # 10.5 s: the next sweep returns it
    assert bad in outliers.healthy(c, c.endpoints)
    assert events[-1]["event"] == "outlier_returned"

    # Fails again at once: the second ejection lasts 2 x 10 s.
    outliers.observe(c, bad, 500, None)
    clock.now += 19.0
    assert bad not in outliers.healthy(c, c.endpoints)
    clock.now += 1.5
    assert bad in outliers.healthy(c, c.endpoints)
    assert events[-2]["ejection_s"] == 20.0


def test_max_ejection_percent_and_panic_through_the_balancer_view():
    clock = Clock()
    outliers = Outliers(clock=clock)
    # Every endpoint fails; the cap lets only one be ejected at 10 %.
    c = cluster(consecutive5xxErrors=1, interval="1s", baseEjectionTime="30s")
    for e in c.endpoints:
        outliers.observe(c, e, 503, None)
    assert len(outliers.healthy(c, c.endpoints)) == 2
    # At 100 % all three go: the destination has no endpoint left (503 UH at the balancer).
    all_out = cluster(service="payments", consecutive5xxErrors=1, maxEjectionPercent=100)
    for e in all_out.endpoints:
        outliers.observe(all_out, e, 503, None)
    assert outliers.healthy(all_out, all_out.endpoints) == []
    # ... unless minHealthPercent says: below half healthy, send to every endpoint (panic mode).
    panic = Cluster("pricing", None, all_out.endpoints, policy=parse_resource(dr_doc("pricing", [], traffic_policy={
        "outlierDetection": {"consecutive5xxErrors": 1, "maxEjectionPercent": 100, "minHealthPercent": 50}})).policy_for(None))
    for e in panic.endpoints:
        outliers.observe(panic, e, 503, None)
    assert list(outliers.healthy(panic, panic.endpoints)) == list(panic.endpoints)
    assert len(outliers.report()) == 1 + 3 + 3


OD = {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "30s"}


@pytest.mark.parametrize("snapshot, ends", [
    (cluster(**OD), False),  # the same rule parsed again: an equal config, Envoy blocks the update
    (cluster(**{**OD, "baseEjectionTime": "20s"}), True),  # outlierDetection changed: a new cluster
    (cluster(lb="ROUND_ROBIN", **OD), True),  # any other trafficPolicy change is a new cluster too
    (cluster(), True),  # the DestinationRule deleted: the cluster has no policy at all
    (cluster(lb="ROUND_ROBIN"), True),  # outlierDetection taken out of the rule
    (None, True),  # the service gone from the mesh: no cluster
])
def test_a_snapshot_ends_the_detector_of_a_changed_cluster_only(snapshot, ends):
    detectors = {"catalog": Detector("catalog", None, cluster(**OD).policy)}
    configs = {} if snapshot is None else {snapshot.name: snapshot.policy}
    assert stale(detectors, configs) == (["catalog"] if ends else [])


def test_deleting_the_rule_returns_every_ejected_endpoint_at_once_and_reapplying_counts_afresh():
    clock = Clock()
    outliers = Outliers(clock=clock)
    c = cluster(**OD)
    bad = c.endpoints[0]
    outliers.observe(c, bad, 503, None)
    outliers.changed = False  # as if the control plane has heard of the ejection

    # The same rule again (a new snapshot, an equal policy): the ejection stands.
    outliers.sync(MeshConfig(clusters={("catalog", None): cluster(**OD)}))
    assert [e["instance"] for e in outliers.report()] == [bad.instance] and not outliers.changed

    # The rule deleted, 1 s into a 30 s ejection: everything it counted goes, at once.
    clock.now += 1.0
    deleted = cluster()
    outliers.sync(MeshConfig(clusters={("catalog", None): deleted}))
    assert outliers.report() == [] and outliers.active() == {} and outliers.changed
    assert outliers.healthy(deleted, deleted.endpoints) == deleted.endpoints

    # Applied again: no ejection comes back, and the next one is the first (30 s), not the second (60 s).
    again = cluster(**OD)
    outliers.sync(MeshConfig(clusters={("catalog", None): again}))
    assert list(outliers.healthy(again, again.endpoints)) == list(again.endpoints)
    outliers.observe(again, bad, 503, None)
    [entry] = outliers.report()
    assert entry["until"] == pytest.approx(outliers.wall() + 30.0, abs=0.5)


@pytest.mark.parametrize("hosts, members, ends", [
    (["a", "b", "c"], {"a", "b", "c"}, []),  # the same endpoints: every host keeps its state
    (["a", "b", "c"], {"b", "c"}, ["a"]),  # a's instance deregistered
    (["a", "b"], {"b", "c", "d"}, ["a"]),  # scaled: a gone, c and d new (they start with no host yet)
    (["a", "b"], set(), ["a", "b"]),  # the service scaled to zero
    (["b", "a"], {"a:1"}, ["a", "b"]),  # compared by whole address, in address order
    ([], {"a"}, []),
])
def test_a_snapshot_ends_the_hosts_that_left_the_cluster(hosts, members, ends):
    assert departed({a: Host() for a in hosts}, frozenset(members)) == ends


def without(c: Cluster, *gone: Endpoint) -> Cluster:
    return Cluster(c.service, c.subset, tuple(e for e in c.endpoints if e not in gone), c.load_balancer, c.policy)


def test_a_departed_host_takes_its_ejection_with_it_and_a_returning_one_starts_afresh():
    clock = Clock()
    outliers = Outliers(clock=clock)
    c = cluster(**OD)  # maxEjectionPercent 10: one ejection at a time (Envoy always allows one)
    a, b, _ = c.endpoints
    outliers.observe(c, a, 503, None)
    outliers.observe(c, b, 503, None)
    assert [e["endpoint"] for e in outliers.report()] == [a.address]  # b: the cap
    outliers.changed = False

    # a's instance deregisters, 1 s into its 30 s ejection: it is not reported, nor counted, at once.
    clock.now += 1.0
    two = without(c, a)
    outliers.sync(MeshConfig(clusters={("catalog", None): two}))
    assert outliers.report() == [] and outliers.active() == {("catalog", ""): 0} and outliers.changed
    # An answer from a still on its way counts for nothing (Envoy: the host is no longer in the cluster).
    outliers.observe(c, a, 503, None)
    assert outliers.report() == []
    # So the cap lets the next bad endpoint go: 0 ejected of 2, and one is always allowed.
    outliers.observe(two, b, 503, None)
    assert [e["endpoint"] for e in outliers.report()] == [b.address]

    # a registers again on the same address: a new host, healthy, whose next ejection is its first (30 s x 1).
    three = cluster(**OD)
    outliers.sync(MeshConfig(clusters={("catalog", None): three}))
    assert a in outliers.healthy(three, three.endpoints)
    outliers.sync(MeshConfig(clusters={("catalog", None): without(three, b)}))  # b leaves: a may be ejected
    outliers.observe(three, a, 503, None)
    [entry] = outliers.report()
    assert entry["endpoint"] == a.address and entry["until"] == pytest.approx(outliers.wall() + 30.0, abs=0.5)


def test_a_host_leaving_a_subset_ends_its_state_there_only():
    outliers = Outliers(clock=Clock())
    rule = parse_resource(dr_doc("catalog", [{"name": "v1", "labels": {"version": "v1"}}], traffic_policy={"outlierDetection": OD}))
    e = Endpoint("catalog-v1-0", "127.0.0.1:7000", labels=(("version", "v1"),))
    everyone = Cluster("catalog", None, (e,), policy=rule.policy_for(None))
    v1 = Cluster("catalog", "v1", (e,), policy=rule.policy_for("v1"))
    outliers.observe(everyone, e, 503, None)
    outliers.observe(v1, e, 503, None)
    assert len(outliers.report()) == 2
    # Relabelled out of v1: the subset's cluster loses it, the service's keeps it (and its ejection).
    outliers.sync(MeshConfig(clusters={("catalog", None): everyone, ("catalog", "v1"): Cluster(
        "catalog", "v1", (), policy=rule.policy_for("v1"))}))
    assert [(r["subset"], r["endpoint"]) for r in outliers.report()] == [(None, e.address)]
