"""The telemetry hub's arithmetic: windows, percentiles, effective vs actual success, tap filters, traces."""

import random

import pytest

from minimesh.control.telemetry import TelemetryHub, tap_filter
from minimesh.control.telemetry_window import Window
from minimesh.proxy.observe.rollup import Tally
from minimesh.proxy.observe.rollup import latency_bin
from minimesh.flags import FLAGS, explain
from minimesh.errors import MeshError
from minimesh.lesson.trace_check import judge_trace
from minimesh import errors

ENDPOINTS = {"10.0.0.1:1": {"service": "payments", "version": "v1", "instance": "payments-v1-0"},
             "10.0.0.2:1": {"service": "payments", "version": "v1", "instance": "payments-v1-1"}}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def hub(clock) -> TelemetryHub:
    return TelemetryHub(ENDPOINTS.get, lambda: {("payments", "v1"): 2}, clock=clock)


def outbound(status, attempts, trace="t" * 32, span="a" * 16):
    return {"reporter": "outbound", "service": "web", "version": "v1", "instance": "web-v1-0",
            "destination": "payments", "endpoint": attempts[-1][0], "status": status, "duration_ms": 5.0,
            "start": 1000.0, "trace_id": trace, "span_id": span, "parent_id": None, "method": "POST",
            "path": "/pay", "tries": [[ep, st, None, 0.0, 2.0] for ep, st in attempts], "flags": []}


def inbound(status, ms=4.0):
    return {"reporter": "inbound", "service": "payments", "version": "v1", "instance": "payments-v1-0",
            "peer": "web;v1;web-v1-0", "status": status, "duration_ms": ms, "start": 1000.0}


def test_effective_success_is_after_retries_and_actual_counts_every_attempt():
    clock = Clock()
    h = hub(clock)
    # 10 checkouts: 7 succeed at once; 3 fail once, then succeed on a retry.
    events = [outbound(200, [("10.0.0.1:1", 200)]) for _ in range(7)]
    events += [outbound(200, [("10.0.0.1:1", 503), ("10.0.0.2:1", 200)]) for _ in range(3)]
    events += [inbound(200) for _ in range(10)] + [inbound(503) for _ in range(3)]
    assert h.ingest(events) == 23
    row = h.stat(60)["workloads"][0]
    assert row["service"] == "payments" and row["meshed"] == 2
    assert row["effective_success_rate"] == 1.0
    assert row["actual_success_rate"] == pytest.approx(10 / 13, abs=1e-4)
    assert row["success_rate"] == pytest.approx(10 / 13, abs=1e-4)
    assert row["retries"] == 3
    assert row["rps"] == pytest.approx(13 / 60, abs=1e-3)


def test_the_window_forgets_old_seconds():
    clock = Clock()
    h = hub(clock)
    h.ingest([inbound(503)])
    clock.now += 30
    h.ingest([inbound(200)])
    assert h.stat(60)["workloads"][0]["requests"] == 2
    assert h.stat(10)["workloads"][0]["requests"] == 1
    clock.now += 400
    assert h.stat(60)["workloads"] == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_a_few_percent_of_the_exact_ones(seed):
    rand = random.Random(seed)
    values = [rand.lognormvariate(2, 1) for _ in range(5000)]
    tally = Tally()
    for v in values:
        tally.latency[latency_bin(v)] += 1
    exact = sorted(values)
    for p in (0.5, 0.95, 0.99):
        assert tally.percentile(p) == pytest.approx(exact[int(p * len(exact)) - 1], rel=0.05)


def test_window_query_merges_buckets():
    w = Window()
    w.tally(("k",), 10.2).requests += 2
    w.tally(("k",), 11.7).requests += 3
    assert w.query(60, 12)[("k",)].requests == 5


@pytest.mark.parametrize("service, status, reporter, expected", [
    (None, None, None, 3), ("web", None, None, 3), ("catalog", None, None, 0),
    (None, "5xx", None, 1), (None, "503", None, 1), (None, "2xx", None, 2),
    (None, None, "source", 2), (None, None, "destination", 1),
])
def test_tap_filters(service, status, reporter, expected):
    h = hub(Clock())
    h.ingest([outbound(200, [("10.0.0.1:1", 200)]), outbound(503, [("10.0.0.1:1", 503)]), inbound(200)])
    assert len(h.tap_since(0, tap_filter(service, status, reporter))) == expected


def test_retried_request_becomes_a_client_span_with_attempt_children():
    h = hub(Clock())
    h.ingest([outbound(200, [("10.0.0.1:1", 503), ("10.0.0.2:1", 200)])])
    trace = h.traces.get("t" * 32)
    kinds = [(s["kind"], s["parent_id"]) for s in trace["spans"]]
    assert kinds[0] == ("client", None)
    assert [k for k in kinds[1:]] == [("attempt", "a" * 16)] * 2
    assert [s["peer"]["instance"] for s in trace["spans"][1:]] == ["payments-v1-0", "payments-v1-1"]


def test_malformed_events_are_rejected_not_fatal():
    h = hub(Clock())
    assert h.ingest([{"nonsense": 1}, "text", inbound("x")]) == 1  # a non-int status still counts, as a failure
    assert h.rejected == 2


def test_the_trace_store_is_bounded():
    h = TelemetryHub(ENDPOINTS.get, dict, clock=Clock(), max_traces=3)
    for i in range(5):
        h.ingest([outbound(200, [("10.0.0.1:1", 200)], trace=f"{i:032x}")])
    assert [t["trace_id"] for t in h.traces.recent()] == [f"{i:032x}" for i in (4, 3, 2)]


@pytest.mark.parametrize("error", [c for c in vars(errors).values()
                                   if isinstance(c, type) and issubclass(c, MeshError)])
def test_every_flag_the_mesh_raises_is_explained(error):
    if error is errors.JwtRejected:  # Envoy's jwt_authn sets no response flag on its 401: nor do we
        assert error.flag == ""
        return
    entry = explain(error.flag.lower())
    assert entry.meaning and entry.cause


@pytest.mark.parametrize("code", ["NR", "UH", "UF", "UC", "UT", "URX", "UO", "DPE", "DC", "NC", "RBAC", "FI", "DI"])
def test_explain_covers_the_flags_the_issue_names(code):
    assert FLAGS[code].code == code


def span(service, kind, start, ms):
    return {"service": service, "kind": kind, "start": start, "duration_ms": ms}


@pytest.mark.parametrize("spans, args, ok", [
    ([span("web", "server", 0, 10), span("pricing", "server", 0.001, 1)], {"services": ["web", "pricing"]}, True),
    ([span("web", "server", 0, 10)], {"services": ["web", "pricing"]}, False),
    ([span("pricing", "server", i * 0.01, 5) for i in range(5)],
     {"calls_to": "pricing", "min_calls": 5, "sequential": True}, True),
    ([span("pricing", "server", 0.0, 5) for i in range(5)],
     {"calls_to": "pricing", "min_calls": 5, "sequential": True}, False),  # overlapping: in parallel
    ([span("pricing", "server", 0.0, 5)], {"calls_to": "pricing", "min_calls": 5}, False),
])
def test_judge_trace(spans, args, ok):
    assert judge_trace(args, {"spans": spans}).ok is ok
