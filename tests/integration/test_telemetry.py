"""Telemetry as a learner meets it: one request's trace, trace headers at a hop, /metrics, tap, Zipkin.

Real processes throughout (tests/support/mesh.py): a control plane — the
telemetry hub — demo services beside real sidecars, and the gateway. A fake
Zipkin collector and an echo app run inside the test.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.support.control import wait_for
from tests.support.mesh import client_session, run_mesh, run_sidecar
from tests.support.shop import start_app

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]

REPO = Path(__file__).resolve().parents[2]
ZIPKIN_SCHEMA = REPO / ".." / "shared" / "reference" / "zipkin2-api.yaml"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def zipkin():
    """A Zipkin collector that keeps what it is sent."""
    received: list = []

    async def collect(request):
        received.extend(await request.json())
        return web.Response(status=202)

    runner, port = await start_app(collect)
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(tmp_path_factory, zipkin):
    """web, catalog, pricing with sidecars and the gateway; the control plane exports to the fake Zipkin."""
    os.environ["MINIMESH_ZIPKIN_URL"] = zipkin[0]
    try:
        async with run_mesh(tmp_path_factory.mktemp("telemetry") / "home") as mesh:
            await mesh.add("web")
            await mesh.add("catalog")
            await mesh.add("pricing")
            await mesh.add_gateway(default_service="web")
            await mesh.converged()
            yield mesh
    finally:
        del os.environ["MINIMESH_ZIPKIN_URL"]


async def get_json(url: str) -> dict:
    async with client_session() as http, http.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def products(shop, headers=None) -> None:
    async with shop.client() as http, http.get(shop.gateway.listen + "/api/products", headers=headers) as r:
        assert r.status == 200, await r.text()
        await r.read()


def by_kind(spans: list, kind: str, service: str) -> dict:
    found = [s for s in spans if s["kind"] == kind and s["service"] == service]
    assert len(found) == 1, (kind, service, spans)
    return found[0]


async def test_one_request_makes_one_trace_across_gateway_web_catalog_pricing(shop):
    # One request through the gateway to /api/products, nothing else going on.
    await products(shop)

    async def complete():
        traces = (await get_json(shop.control_url + "/v1/traces"))["traces"]
        return traces if traces and traces[0]["spans"] >= 6 else None
    traces = await wait_for(complete, 10, what="the trace's six spans at the control plane")
    assert len(traces) == 1, traces
    trace = await get_json(f"{shop.control_url}/v1/traces/{traces[0]['trace_id']}")
    spans = trace["spans"]
    assert {s["service"] for s in spans} == {"gateway", "web", "catalog", "pricing"}

    # The parent links: gateway → web's server span → web's client spans → catalog's and pricing's server spans.
    gateway = by_kind(spans, "gateway", "gateway")
    web_in = by_kind(spans, "server", "web")
    catalog_in, pricing_in = by_kind(spans, "server", "catalog"), by_kind(spans, "server", "pricing")
    web_out = {s["peer"]["service"]: s for s in spans if s["kind"] == "client" and s["service"] == "web"}
    assert gateway["parent_id"] is None
    assert web_in["parent_id"] == gateway["span_id"]
    assert web_out["catalog"]["parent_id"] == web_in["span_id"] == web_out["pricing"]["parent_id"]
    assert catalog_in["parent_id"] == web_out["catalog"]["span_id"]
    assert pricing_in["parent_id"] == web_out["pricing"]["span_id"]
    assert len({s["span_id"] for s in spans}) == 6 and {s["trace_id"] for s in spans} == {trace["trace_id"]}

    # `minimesh trace` (no id: the slowest recent trace) draws it: one row per span, nested.
    r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "minimesh.cli", "trace", "--control",
                                                 shop.control_url], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    lines = r.stdout.splitlines()
    assert trace["trace_id"] in lines[0]
    rows = [line for line in lines[2:] if "|" in line]
    assert [re.split(r"\s{2,}", row.strip())[0] for row in rows] == [
        "gateway ▶ web", "web ◀ gateway", "web ▶ catalog", "catalog ◀ web", "web ▶ pricing", "pricing ◀ web"]
    assert all("█" in row for row in rows)


async def test_spans_are_exported_to_zipkin_as_valid_v2_json(shop, zipkin):
    _url, received = zipkin
    await products(shop, {"traceparent": f"00-{TRACE}-{SPAN}-01"})
    # Each sidecar sends its spans in its own batches: wait for every hop's, the last to finish included.
    await wait_for(lambda: _async({s["localEndpoint"]["serviceName"] for s in received if s["traceId"] == TRACE}
                                  >= {"gateway", "web", "catalog", "pricing"}), 10,
                   what="every hop's spans at the Zipkin collector")
    api = yaml.safe_load(ZIPKIN_SCHEMA.read_text())
    schema = {"$ref": "#/definitions/ListOfSpans", "definitions": api["definitions"]}
    jsonschema.validate(received, schema)
    ours = [s for s in received if s["traceId"] == TRACE]
    assert {s["localEndpoint"]["serviceName"] for s in ours} == {"gateway", "web", "catalog", "pricing"}
    assert [s.get("parentId") for s in ours if s["localEndpoint"]["serviceName"] == "gateway"] == [SPAN]


async def _async(value):
    return value


@pytest.mark.parametrize("sent, continued", [
    ({"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"}, True),
    ({"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "Bad Key=1,ok=2"}, True),
    ({"traceparent": f"00-{'0' * 32}-{SPAN}-01", "tracestate": "rojo=1"}, False),  # all-zero trace-id
    ({"traceparent": f"00-{TRACE}-{'0' * 16}-01"}, False),  # all-zero parent-id
    ({"traceparent": "00-garbage", "tracestate": "rojo=1"}, False),  # malformed
    ({}, False),  # none at all
])
async def test_a_hop_continues_valid_trace_context_and_restarts_invalid(shop, sent, continued):
    # An echo app behind a real sidecar shows exactly which trace headers the hop sent on.
    async def echo(request):
        return web.json_response({k.lower(): v for k, v in request.headers.items()})

    runner, app_port = await start_app(echo)
    try:
        async with run_sidecar(shop.control_url, "echo", app_port, log_dir=shop.log_dir) as sidecar:
            async with client_session() as http, http.get(sidecar.inbound + "/", headers=sent) as r:
                seen = await r.json()
    finally:
        await runner.cleanup()
    version, trace_id, parent_id, flags = seen["traceparent"].split("-")
    assert version == "00" and len(parent_id) == 16 and parent_id != SPAN and parent_id != "0" * 16
    if continued:
        assert trace_id == TRACE and flags == "01"
        # tracestate travels on, normalised; an invalid member is dropped, the valid ones kept in order.
        expected = {"congo=t61rcWkgMzE, rojo=00f067aa0ba902b7": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
                    "Bad Key=1,ok=2": "ok=2"}[sent["tracestate"]]
        assert seen["tracestate"] == expected
    else:
        assert trace_id not in (TRACE, "0" * 32) and len(trace_id) == 32
        assert "tracestate" not in seen  # a new trace has no state to keep


async def test_a_tap_line_arrives_within_a_second_of_the_request_finishing(shop):
    for attempt in range(5):
        seq = (await get_json(shop.control_url + "/v1/tap?timeout=0"))["next"]
        request_id = f"tap-{attempt}-{time.monotonic_ns()}"
        tap = asyncio.create_task(get_json(
            f"{shop.control_url}/v1/tap?since={seq}&timeout=5&service=web&reporter=source"))
        await products(shop, {"x-request-id": request_id})
        finished = time.monotonic()
        while True:
            events = (await tap)["events"]
            mine = [e for e in events if e["request_id"] == request_id and e["destination"]["service"] == "web"]
            if mine or time.monotonic() - finished > 1.0:
                break
            seq = max(e["seq"] for e in events) if events else seq
            tap = asyncio.create_task(get_json(f"{shop.control_url}/v1/tap?since={seq}&timeout=2&service=web"))
        delay = time.monotonic() - finished
        assert mine, f"no tap line for {request_id} within {delay:.2f}s"
        assert delay < 1.0, f"tap line after {delay:.2f}s"
        assert mine[0]["status"] == 200 and mine[0]["source"]["service"] == "gateway"


def scrape_counts(text: str) -> dict:
    """{(reporter, source_workload, destination_service, response_code): requests} from /metrics."""
    counts = {}
    for family in text_string_to_metric_families(text):
        if family.name == "minimesh_requests":
            for s in family.samples:
                if s.name == "minimesh_requests_total":
                    key = (s.labels["reporter"], s.labels["source_workload"], s.labels["destination_service"],
                           s.labels["response_code"])
                    counts[key] = counts.get(key, 0) + int(s.value)
    return counts


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
async def test_every_sidecars_metrics_pass_promtool_and_count_the_traffic_sent(shop):
    proxies = shop.proxies()

    async def scrape_all() -> dict:
        return {p.instance: await _text(p.admin + "/metrics") for p in proxies}
    before = {name: scrape_counts(text) for name, text in (await scrape_all()).items()}
    sent = 23
    for _ in range(sent):
        await products(shop)

    # What each reporter should have counted for those 23 requests.
    expected = {
        "gateway": {("source", "gateway", "web", "200"): sent},
        "web-v1-0": {("destination", "gateway", "web", "200"): sent, ("source", "web", "catalog", "200"): sent,
                     ("source", "web", "pricing", "200"): sent},
        "catalog-v1-1": {("destination", "web", "catalog", "200"): sent},
        "pricing-v1-2": {("destination", "web", "pricing", "200"): sent},
    }

    async def counted():
        texts = await scrape_all()
        for name, want in expected.items():
            now = scrape_counts(texts[name])
            for key, n in want.items():
                if now.get(key, 0) - before[name].get(key, 0) != n:
                    return None
        return texts
    texts = await wait_for(counted, 10, what="every sidecar's /metrics to count the 23 requests")

    for name, text in texts.items():
        assert "minimesh_config_version" in text
        result = await asyncio.to_thread(subprocess.run, ["promtool", "check", "metrics"], input=text,
                                         capture_output=True, text=True, timeout=30)
        problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        assert result.returncode == 0 and not problems, f"{name}: {problems}"
        assert "minimesh_request_duration_seconds_bucket" in text


async def _text(url: str) -> str:
    async with client_session() as http, http.get(url) as r:
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/plain")
        return await r.text()


async def test_stat_and_routes_show_the_shop(shop):
    for _ in range(5):
        await products(shop)
    stat = await get_json(shop.control_url + "/v1/stat?window=60")
    rows = {(w["service"], w["version"]): w for w in stat["workloads"]}
    for service in ("web", "catalog", "pricing"):
        row = rows[(service, "v1")]
        assert row["requests"] >= 5 and row["success_rate"] == 1.0 and row["meshed"] == 1
        assert row["latency_ms"]["p50"] <= row["latency_ms"]["p95"] <= row["latency_ms"]["p99"]
    edges = {(e["source"]["service"], e["destination"]["service"]) for e in stat["edges"]}
    assert {("gateway", "web"), ("web", "catalog"), ("web", "pricing")} <= edges
    r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "minimesh.cli", "stat", "--control",
                                                 shop.control_url], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    header, *lines = r.stdout.splitlines()
    assert header.split()[:8] == ["NAME", "VERSION", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95",
                                  "LATENCY_P99"]
    assert any(line.split()[:4] == ["catalog", "v1", "1/1", "100.00%"] for line in lines), r.stdout
    json.loads((await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "minimesh.cli", "stat", "--json",
                                                         "--control", shop.control_url],
                                        capture_output=True, text=True, timeout=30)).stdout)
