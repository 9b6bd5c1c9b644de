"""Lesson 05 end to end: one request's trace, the planted staircase, and the break-it.

Walks every step with `minimesh lesson step` / `lesson check`, draws the
waterfall with `minimesh trace`, then runs the break-it: the same lesson with
web told not to forward the trace headers (FORWARD_TRACE_HEADERS=0), where the
request's trace stops at web and catalog and pricing start traces of their own.
"""

import json
import re

import pytest
import yaml

from tests.support.stack import REPO, running_stack, wait_for

pytestmark = pytest.mark.timeout(240)
LESSON = REPO / "lessons" / "05-tracing"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(LESSON, tmp_path_factory.mktemp("lesson05") / "home") as stack:
        yield stack


@pytest.mark.parametrize("step", [1, 2])
def test_lesson_check_passes_at_every_step(stack, step):
    r = stack.cli("lesson", "step", "05", str(step))
    assert r.returncode == 0, r.stdout + r.stderr
    r = stack.cli("lesson", "check", "05")
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"step {step}" in r.stdout and "PASS" in r.stdout


def test_the_waterfall_shows_five_pricing_calls_one_after_another(stack):
    # Step 2 is in force (pricing takes 20 ms per call): the slowest recent trace is a products page.
    assert stack.cli("lesson", "step", "05", "2").returncode == 0
    assert stack.cli("lesson", "check", "05").returncode == 0
    r = stack.cli("trace")
    print(r.stdout)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if "|" in line]
    pricing_calls = [row for row in rows if row.strip().startswith("web ▶ pricing")]
    assert len(pricing_calls) == 5
    # One after another: each bar starts where the previous one ended, a staircase.
    starts = [row.index("█") for row in pricing_calls]
    assert starts == sorted(starts) and len(set(starts)) == 5


def test_break_it_an_app_that_drops_the_trace_headers_splits_the_trace(tmp_path):
    lesson = tmp_path / "05-broken"
    lesson.mkdir()
    doc = yaml.safe_load((LESSON / "lesson.yaml").read_text())
    for version in doc["services"]["web"]["versions"].values():
        version["command"] = ["python", str(REPO / "demo-services" / "web.py")]
        version["env"]["FORWARD_TRACE_HEADERS"] = "0"
    for name in ("catalog", "pricing"):
        doc["services"][name]["versions"]["v1"]["command"] = ["python", str(REPO / "demo-services" / f"{name}.py")]
    doc.pop("steps")
    (lesson / "lesson.yaml").write_text(yaml.safe_dump(doc))
    (lesson / "gateway.yaml").write_text((LESSON / "gateway.yaml").read_text())  # the way in, as the lesson's
    with running_stack(lesson, tmp_path / "home") as broken:
        gateway = broken.status()["gateway_url"]
        import urllib.request
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(gateway + "/api/products", timeout=10) as resp:
            assert resp.status == 200

        def traces():
            r = broken.cli("trace", "--json")  # the slowest: the products request's own trace
            found = json.loads(broken.cli("status", "--json").stdout) and r.returncode == 0 and json.loads(r.stdout)
            return found if found and {"gateway", "web"} <= set(found["services"]) else None
        trace = wait_for(traces, timeout=10, what="the request's trace")
        # The request's trace stops at web: catalog and pricing are not in it ...
        assert set(trace["services"]) == {"gateway", "web"}, trace["services"]
        # ... because web's calls arrived at its sidecar with no trace context, so the sidecar
        # started a new trace for each: rooted at web's client span, unconnected to the gateway.
        r = broken.cli("trace", "--service", "pricing", "--json")
        assert r.returncode == 0, r.stderr
        orphan = json.loads(r.stdout)
        assert orphan["trace_id"] != trace["trace_id"] and re.fullmatch(r"[0-9a-f]{32}", orphan["trace_id"])
        assert "gateway" not in orphan["services"]
        roots = [s for s in orphan["spans"] if s["parent_id"] is None]
        assert [(s["service"], s["kind"]) for s in roots] == [("web", "client")]
