"""Outlier ejections and returns as tap lines: the hub keeps them, `minimesh tap` and the TUI show them."""

import pytest

from minimesh.control.telemetry import TelemetryHub, tap_filter
from minimesh.telemetry.tap import format_tap
from tui.client import parse_tap
from tui.explain import explain
from tui.state import TAP_DRAW_BUDGET, MeshState
from tui.views.tap import rows

ENDPOINTS = {"10.0.0.1:1": {"service": "payments", "version": "v1", "instance": "payments-v1-0"}}


def ejection(event="outlier_ejected", **changes):
    e = {"event": event, "reporter": "outbound", "service": "web", "version": "v1", "instance": "web-v1-0",
         "destination": "payments", "subset": None, "endpoint": "10.0.0.1:1", "upstream_instance": "payments-v1-0",
         "reason": "consecutive5xxErrors 1", "ejections": 2, "ejection_s": 60.0, "time": 1000.25}
    return {**e, **changes}


def request(status=503):
    return {"reporter": "outbound", "service": "web", "version": "v1", "instance": "web-v1-0",
            "destination": "payments", "endpoint": "10.0.0.1:1", "status": status, "duration_ms": 5.0,
            "start": 1000.0, "method": "POST", "path": "/pay", "tries": [], "flags": []}


def hub() -> TelemetryHub:
    return TelemetryHub(ENDPOINTS.get, dict, clock=lambda: 1000.0)


def test_an_ejection_is_a_tap_line_naming_the_caller_the_instance_why_and_how_long():
    h = hub()
    assert h.ingest([request(), ejection(), ejection("outlier_returned", time=1060.5)], tallies=[]) == 3
    _, line, back = h.tap_since(0, tap_filter())
    assert line["kind"] == "outlier" and line["event"] == "ejected" and line["ts"] == 1000.25
    assert line["source"] == {"service": "web", "version": "v1", "instance": "web-v1-0"}
    assert line["destination"] == {"service": "payments", "version": "v1", "instance": "payments-v1-0"}
    assert (line["reason"], line["ejections"], line["ejection_s"]) == ("consecutive5xxErrors 1", 2, 60.0)
    assert back["event"] == "returned"
    # Not a request: no trace, nothing counted in the rollups.
    assert h.traces.recent(10, None, False) == [] and h.stat(60)["workloads"] == []


@pytest.mark.parametrize("bad", [
    {"reporter": "inbound"},  # the callee does not eject itself
    {"upstream_instance": None},
    {"time": "soon"},
    {"ejection_s": "long"},
])
def test_a_malformed_event_is_refused_and_counted(bad):
    h = hub()
    assert h.ingest([ejection(**bad)], tallies=[]) == 0 and h.rejected == 1 and not h.tap


@pytest.mark.parametrize("service, status, reporter, shown", [
    ("payments", None, None, True), ("web", None, None, True), ("catalog", None, None, False),
    (None, "5xx", None, True),  # a learner watching failures sees why they stop
    (None, None, "source", True), (None, None, "destination", False),
])
def test_the_tap_filters_treat_an_event_as_the_callers_line(service, status, reporter, shown):
    h = hub()
    h.ingest([ejection()], tallies=[])
    assert bool(h.tap_since(0, tap_filter(service, status, reporter))) == shown


def test_minimesh_tap_prints_the_event_in_words():
    h = hub()
    h.ingest([ejection(), ejection("outlier_returned")], tallies=[])
    out, back = (format_tap(e) for e in h.tap_since(0, tap_filter()))
    assert out.endswith("web/v1 (web-v1-0) ✗ payments/v1 (payments-v1-0)  "
                        "ejected for 60s (consecutive5xxErrors 1, ejection 2)"), out
    assert back.endswith("web/v1 (web-v1-0) ✓ payments/v1 (payments-v1-0)  returned after 60s"), back


def test_the_tui_shows_the_event_unsampled_and_explains_it():
    h = hub()
    h.ingest([request(200) for _ in range(3 * TAP_DRAW_BUDGET)] + [ejection()], tallies=[])
    events = [parse_tap(e) for e in h.tap_since(0, tap_filter())]
    state = MeshState()
    state.take_tap(events, now=1001)
    assert state.sampling > 1  # the requests were sampled ...
    [event] = [e for e in state.tap if e.kind == "outlier"]  # ... the ejection was not
    [(_, cells)] = [r for r in rows([event]) if r[0] == str(event.seq)]
    text = [c.plain if hasattr(c, "plain") else str(c) for c in cells]
    assert "EJECTED" in text and "payments/v1 (payments-v1-0)" in text, text
    said = dict(explain(event))
    assert said["event"] == "web-v1-0's sidecar ejected payments-v1-0 (payments/v1 at 10.0.0.1:1) from its load balancer"
    assert "consecutive5xxErrors 1" in said["why"]
