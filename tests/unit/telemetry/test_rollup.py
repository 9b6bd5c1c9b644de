"""Sidecar-side rollups: the tallies a sidecar sends add up to exactly what its records would have.

The control plane used to roll up one record per request; now each sidecar
counts (proxy/observe/rollup.py) and sends tallies. Whatever `minimesh stat` shows
must not depend on which of the two arrived, so the same seeded traffic is
fed to one hub as records and to another as tallies, and the figures must
be equal, to the last digit.
"""

import json
import random

import pytest
from multidict import CIMultiDict

from minimesh.control.telemetry import TelemetryHub
from minimesh.proxy.observe.export import TelemetryExporter
from minimesh.proxy.message import Attempt, Journey, Request
from minimesh.proxy.observe.metrics import MeshMetrics
from minimesh.proxy.observe.rollup import Tallies, bin_value, count_request, latency_bin
from minimesh.proxy.snapshot import Cluster, Endpoint, MeshConfig
from minimesh.proxy.observe.telemetry import RequestTelemetry

PAYMENTS = {"10.0.0.1:1": ("payments-v1-0", "v1"), "10.0.0.2:1": ("payments-v2-0", "v2"),
            "10.0.0.3:1": ("payments-v2-1", "v2")}
CONFIG = MeshConfig(clusters={("payments", None): Cluster("payments", None, tuple(
    Endpoint(instance, address, (("version", version),)) for address, (instance, version) in PAYMENTS.items()))})


def resolve(address):
    if address not in PAYMENTS:
        return None
    instance, version = PAYMENTS[address]
    return {"service": "payments", "version": version, "instance": instance}


class Clock:
    now = 5000.0

    def __call__(self):
        return self.now


def sidecar(service: str, version: str) -> RequestTelemetry:
    metrics = MeshMetrics()
    exporter = TelemetryExporter("http://127.0.0.1:9", f"{service}-{version}-0", metrics)
    return RequestTelemetry({"service": service, "version": version, "instance": f"{service}-{version}-0"},
                            metrics, exporter, sampling=1.0)


def traffic(rng: random.Random, web: RequestTelemetry, payments: dict, n: int) -> list[str]:
    """n calls web → payments with retries, failures and both versions; returns every record made."""
    records = []
    for i in range(n):
        journey = Journey("outbound", service="payments", route=rng.choice(["default", "retry-5xx", None]),
                          config=CONFIG, mtls=rng.random() < 0.5)
        request = Request("POST", "/pay", "payments", CIMultiDict({"x-request-id": f"r{i}"}), journey=journey)
        web.begin(request)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            endpoint = rng.choice([*PAYMENTS, "10.9.9.9:1"])  # and one nobody knows
            status = rng.choice([200, 200, 200, 503, 504, None])
            journey.attempts.append(Attempt(endpoint, status, None if status else "UF: connection refused",
                                            round(rng.uniform(0.1, 40), 3), journey.started))
            journey.endpoint = endpoint
        final = journey.attempts[-1].status or 503
        ms = round(rng.lognormvariate(1.5, 1.0), 3)
        web.finish(request, final, ms)
        records.append(web.record(request, final, ms, 5000.0))
        # ...and the callee's inbound side, when an instance we know answered.
        if journey.endpoint in PAYMENTS:
            _, version = PAYMENTS[journey.endpoint]
            inbound = Request("POST", "/pay", "payments", CIMultiDict(request.headers),
                              journey=Journey("inbound", service="payments"))
            payments[version].begin(inbound)
            inbound_ms = round(ms * rng.uniform(0.3, 0.9), 3)
            payments[version].finish(inbound, final, inbound_ms)
            records.append(payments[version].record(inbound, final, inbound_ms, 5000.0))
    return records


def test_tallies_give_the_hub_exactly_the_figures_the_records_would():
    rng = random.Random(20261126)
    web = sidecar("web", "v1")
    payments = {"v1": sidecar("payments", "v1"), "v2": sidecar("payments", "v2")}
    records = traffic(rng, web, payments, 400)
    clock = Clock()
    by_records = TelemetryHub(resolve, lambda: {("payments", "v1"): 1, ("payments", "v2"): 2}, clock=clock)
    by_tallies = TelemetryHub(resolve, lambda: {("payments", "v1"): 1, ("payments", "v2"): 2}, clock=clock)
    assert by_records.ingest([json.loads(r) for r in records]) == len(records)
    for side in (web, *payments.values()):
        side.count()
        by_tallies.ingest([], side.exporter.tallies.drain())
    expected, got = by_records.stat(60), by_tallies.stat(60)
    assert got == expected
    # Not a vacuous equality: there is traffic, retries and failure in it.
    rows = {(w["service"], w["version"]): w for w in got["workloads"]}
    assert rows[("payments", "v2")]["requests"] > 100 and rows[("payments", "v1")]["requests"] > 50
    assert 0 < rows[("payments", "v2")]["success_rate"] < 1 and rows[("payments", "v2")]["retries"] > 0
    assert len(got["edges"]) == 3 and len(got["routes"]) == 2  # (a request with no route is "default")
    # What was drained is gone: a second drain sends nothing twice.
    web.count()
    assert web.exporter.tallies.drain() == []


def test_a_malformed_tally_is_refused_and_the_rest_counted():
    hub = TelemetryHub(resolve, lambda: {}, clock=Clock())
    good = Tallies()
    count_request(good.tally, "payments", "v1", True, True, latency_bin(3.0), False)
    bad = [{"key": ["nonsense", "x"], "requests": 1, "ok": 1, "attempts": 0, "attempts_ok": 0, "mtls": 0,
            "latency": []},
           {"key": ["workload", "payments", "v1"], "requests": "many"}]
    hub.ingest([], bad + good.drain())
    assert hub.rejected == 2
    [row] = hub.stat(60)["workloads"]
    assert row["requests"] == 1 and row["latency_ms"]["p50"] == pytest.approx(3.0, rel=0.03)


@pytest.mark.parametrize("ms", [0.001, 0.01, 0.5, 1, 7.3, 250, 60_000])
def test_a_latency_bin_holds_its_value_within_two_percent(ms):
    assert bin_value(latency_bin(ms)) == pytest.approx(max(ms, 0.01), rel=0.021)


def test_metrics_count_each_request_in_the_first_bucket_whose_bound_it_does_not_exceed():
    from prometheus_client.parser import text_string_to_metric_families

    metrics = MeshMetrics()
    labels = ("source", "web", "v1", "payments", "v2", "200", "-", "none")
    for ms in (0.5, 1.0, 1.0001, 30_000, 120_000):  # on a bound, just past it, past the last one
        metrics.observe(labels, ms, retries=2)
    samples = {(s.name, s.labels.get("le")): s.value
               for family in text_string_to_metric_families(metrics.exposition().decode()) for s in family.samples}
    assert samples[("minimesh_requests_total", None)] == 5
    assert samples[("minimesh_request_duration_seconds_bucket", "0.0005")] == 1
    assert samples[("minimesh_request_duration_seconds_bucket", "0.001")] == 2
    assert samples[("minimesh_request_duration_seconds_bucket", "0.005")] == 3
    assert samples[("minimesh_request_duration_seconds_bucket", "30.0")] == 4
    assert samples[("minimesh_request_duration_seconds_bucket", "60.0")] == 4
    assert samples[("minimesh_request_duration_seconds_bucket", "+Inf")] == 5
    assert samples[("minimesh_request_duration_seconds_count", None)] == 5
    assert samples[("minimesh_request_duration_seconds_sum", None)] == pytest.approx(150.0025001)
    assert samples[("minimesh_retries_total", None)] == 10
