"""The toy shop's contract, checked against the real apps running as subprocesses.

No mesh here: web reaches its upstreams through CATALOG_URL & co, or through
an in-test stand-in (an echo server that records headers, a forward proxy
that records the absolute-form target) when the test is about what web sends.
"""

import asyncio
import contextlib
import math
import time

import aiohttp
import pytest
from aiohttp import web

from tests.support.shop import free_port, start_service

pytestmark = pytest.mark.timeout(90)

TRACE_HEADERS = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "minimesh=1",
    "b3": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    "x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736",
    "x-b3-spanid": "00f067aa0ba902b7",
    "x-b3-parentspanid": "a2fb4a1d1a96d312",
    "x-b3-sampled": "1",
    "x-b3-flags": "0",
    "x-request-id": "req-42",
    "end-user": "jason",
}


@pytest.fixture
def start():
    """start(name, **env) -> a running service, stopped (and its log printed) after the test."""
    handles = []

    def _start(name, **env):
        handles.append(start_service(name, env=env))
        return handles[-1]

    yield _start
    for handle in handles:
        handle.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def get_json(http, url, **kwargs):
    async with http.get(url, **kwargs) as resp:
        return resp.status, await resp.json()


async def send_json(http, method, url, **kwargs):
    async with http.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json()


@contextlib.asynccontextmanager
async def stand_in(handler):
    """An in-test aiohttp server on a free port answering every path with `handler`; yields its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def fake_upstream_answer(service, path):
    """What catalog and pricing would say, enough for web to build its products list."""
    if path.startswith("/items"):
        return {"items": [{"id": "p1", "name": "Kite"}], "service": service, "version": "v9", "instance": "fake"}
    return {"prices": {"p1": 1.0}, "currency": "EUR", "service": service, "version": "v9", "instance": "fake"}


# --- identity and fault knobs --------------------------------------------------


@pytest.mark.parametrize("name, path", [("web", "/healthz"), ("catalog", "/items"),
                                        ("pricing", "/prices"), ("payments", "/charges")])
async def test_every_answer_names_who_served_it(start, http, name, path):
    # Given env identity, both /healthz and a business endpoint say it back.
    svc = start(name, SERVICE=f"my-{name}", VERSION="v7", INSTANCE=f"{name}-a")
    for url in (f"{svc.url}/healthz", f"{svc.url}{path}"):
        status, body = await get_json(http, url)
        assert status == 200, body
        assert (body["service"], body["version"], body["instance"]) == (f"my-{name}", "v7", f"{name}-a")
    assert (await get_json(http, f"{svc.url}/healthz"))[1]["status"] == "ok"


async def test_identity_defaults_to_file_name_v1_and_pid(start, http):
    svc = start("catalog")
    _, body = await get_json(http, f"{svc.url}/healthz")
    assert (body["service"], body["version"], body["instance"]) == ("catalog", "v1", f"catalog-v1-{svc.pid}")
    # SIGTERM is a clean shutdown.
    assert svc.stop(echo_logs=False) == 0


async def test_fault_knobs_read_and_change_at_run_time(start, http):
    svc = start("catalog", FAILURE_RATE="0.25", DELAY_MS="10")
    status, body = await get_json(http, f"{svc.url}/_fault")
    assert (status, body["failure_rate"], body["delay_ms"]) == (200, 0.25, 10)
    # Either key may be given alone; the other keeps its value.
    status, body = await send_json(http, "PUT", f"{svc.url}/_fault", json={"failure_rate": 0.5})
    assert (status, body["failure_rate"], body["delay_ms"]) == (200, 0.5, 10)
    status, body = await send_json(http, "PUT", f"{svc.url}/_fault", json={"delay_ms": 0})
    assert (status, body["failure_rate"], body["delay_ms"]) == (200, 0.5, 0)
    assert body["service"] == "catalog"


@pytest.mark.parametrize("payload, complaint", [
    ({"failure_rate": 1.5}, "failure_rate"),
    ({"failure_rate": -0.1}, "failure_rate"),
    ({"failure_rate": "0.3"}, "failure_rate"),
    ({"failure_rate": True}, "failure_rate"),
    ({"delay_ms": -1}, "delay_ms"),
    ({"delay_ms": None}, "delay_ms"),
    ({"latency": 5}, "unknown"),
    ([0.3], "JSON object"),
    ("{not json", "not valid JSON"),
])
async def test_bad_fault_knobs_are_refused_and_change_nothing(start, http, payload, complaint):
    svc = start("pricing", FAILURE_RATE="0.1")
    kwargs = {"data": payload} if isinstance(payload, str) else {"json": payload}
    status, body = await send_json(http, "PUT", f"{svc.url}/_fault", **kwargs)
    assert status == 400
    assert complaint in body["error"] and body["service"] == "pricing"
    assert (await get_json(http, f"{svc.url}/_fault"))[1]["failure_rate"] == 0.1


async def test_bad_fault_env_stops_the_app_with_a_clear_message():
    with pytest.raises(RuntimeError, match="FAILURE_RATE.*failure_rate must be"):
        start_service("catalog", env={"FAILURE_RATE": "2"})


@pytest.mark.parametrize("rate, expected", [("1", 503), ("0", 200)])
async def test_failure_rate_extremes(start, http, rate, expected):
    svc = start("catalog", FAILURE_RATE=rate)
    for _ in range(20):
        status, body = await get_json(http, f"{svc.url}/items")
        assert status == expected
        assert body["service"] == "catalog"
    if expected == 503:
        assert body["injected"] is True and "injected failure" in body["error"]
    # Health checks and the knobs themselves are never faulted.
    assert (await get_json(http, f"{svc.url}/healthz"))[0] == 200
    assert (await get_json(http, f"{svc.url}/_fault"))[0] == 200


@pytest.mark.parametrize("twins", [
    [{"SEED": "1234", "INSTANCE": "a"}, {"SEED": "1234", "INSTANCE": "b"}],
    # No SEED: the seed comes from INSTANCE, stably across processes (crc32, not hash()).
    [{"INSTANCE": "catalog-x"}, {"INSTANCE": "catalog-x"}],
])
async def test_seeded_failure_rate_is_honest_and_repeatable(start, http, twins):
    # Two instances with the same seed fail the same requests; the share is ~0.3.
    n, p = 400, 0.3
    first, second = (start("catalog", FAILURE_RATE=str(p), **env) for env in twins)
    patterns = []
    for svc in (first, second):
        pattern = []
        for _ in range(n):
            async with http.get(f"{svc.url}/items") as resp:
                pattern.append(resp.status)
        patterns.append(pattern)
    assert patterns[0] == patterns[1]
    assert set(patterns[0]) == {200, 503}
    failures = patterns[0].count(503)
    margin = 4 * math.sqrt(n * p * (1 - p))  # 4 sigma: ~37 around 120
    assert abs(failures - n * p) <= margin, failures


async def test_delay_adds_latency_from_env_and_at_run_time(start, http):
    svc = start("catalog", DELAY_MS="200")
    began = time.monotonic()
    assert (await get_json(http, f"{svc.url}/items"))[0] == 200
    assert time.monotonic() - began >= 0.2
    await send_json(http, "PUT", f"{svc.url}/_fault", json={"delay_ms": 350})
    began = time.monotonic()
    assert (await get_json(http, f"{svc.url}/items"))[0] == 200
    assert time.monotonic() - began >= 0.35


# --- catalog, pricing, payments --------------------------------------------------


async def test_catalog_lists_items(start, http):
    svc = start("catalog")
    status, body = await get_json(http, f"{svc.url}/items")
    assert status == 200 and len(body["items"]) >= 5
    assert all(item["id"] and item["name"] for item in body["items"])


async def test_pricing_v2_canary_gives_different_prices(start, http):
    v1, v2 = start("pricing"), start("pricing", VERSION="v2")
    _, one = await get_json(http, f"{v1.url}/prices", params={"ids": "p1,p2"})
    _, two = await get_json(http, f"{v2.url}/prices", params={"ids": "p1,p2"})
    assert set(one["prices"]) == set(two["prices"]) == {"p1", "p2"}
    assert one["currency"] == "EUR" and (one["version"], two["version"]) == ("v1", "v2")
    assert all(two["prices"][i] < one["prices"][i] for i in ("p1", "p2"))


@pytest.mark.parametrize("bug, ids, status, min_seconds", [
    ("", "p1,p3", 200, 0),
    ("1", "p1,p3", 503, 0),
    ("1", "p1,p2", 200, 0),
    ("slow", "p3", 200, 0.3),
])
async def test_pricing_planted_bug_hits_only_p3(start, http, bug, ids, status, min_seconds):
    svc = start("pricing", VERSION="v2", PRICING_BUG=bug)
    began = time.monotonic()
    got, body = await get_json(http, f"{svc.url}/prices", params={"ids": ids})
    assert got == status, body
    assert time.monotonic() - began >= min_seconds


async def test_payments_counts_charges_and_spots_duplicates(start, http):
    svc = start("payments")
    for order in ("o-1", "o-2", "o-1"):
        status, body = await send_json(http, "POST", f"{svc.url}/pay", json={"order_id": order, "amount": 9.5})
        assert (status, body["status"], body["order_id"]) == (200, "paid", order)
        assert body["charge_id"] and body["service"] == "payments"
    _, charges = await get_json(http, f"{svc.url}/charges")
    assert charges["charges"] == 3
    assert charges["orders"] == {"o-1": 2, "o-2": 1}
    assert charges["duplicates"] == ["o-1"]


@pytest.mark.parametrize("payload", ["{oops", "[1]", '{"amount": 3}', '{"order_id": "", "amount": 3}',
                                     '{"order_id": "o", "amount": "3"}', '{"order_id": "o", "amount": true}',
                                     '{"order_id": "o", "amount": -1}'])
async def test_payments_refuses_bad_orders_without_charging(start, http, payload):
    svc = start("payments")
    status, body = await send_json(http, "POST", f"{svc.url}/pay", data=payload)
    assert status == 400 and body["error"]
    assert (await get_json(http, f"{svc.url}/charges"))[1]["charges"] == 0


async def test_payments_injected_failure_does_not_charge(start, http):
    svc = start("payments", FAILURE_RATE="1")
    status, _ = await send_json(http, "POST", f"{svc.url}/pay", json={"order_id": "o", "amount": 1})
    assert status == 503
    # /charges is bookkeeping: it answers even with every request failing.
    status, body = await get_json(http, f"{svc.url}/charges")
    assert (status, body["charges"]) == (200, 0)


async def test_payments_a_client_that_gives_up_and_retries_pays_twice(start, http):
    # The retries lesson's break-it exercise: a slow payment, a client timeout, a retry.
    svc = start("payments", DELAY_MS="300")
    order = {"order_id": "o-slow", "amount": 5}
    with pytest.raises(asyncio.TimeoutError):
        await send_json(http, "POST", f"{svc.url}/pay", json=order, timeout=aiohttp.ClientTimeout(total=0.05))
    assert (await send_json(http, "POST", f"{svc.url}/pay", json=order))[0] == 200
    # The abandoned request was not cancelled: it charged too, a little later.
    deadline = time.monotonic() + 5
    while (body := (await get_json(http, f"{svc.url}/charges"))[1])["charges"] < 2:
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
    assert body["duplicates"] == ["o-slow"]


# --- web, with real upstreams ------------------------------------------------------


async def test_web_products_combine_catalog_and_pricing(start, http):
    catalog, pricing = start("catalog"), start("pricing", VERSION="v2")
    web_ = start("web", CATALOG_URL=catalog.url, PRICING_URL=pricing.url)
    status, body = await get_json(http, f"{web_.url}/api/products")
    assert status == 200, body
    assert len(body["products"]) >= 5
    assert all(p["id"] and p["name"] and p["price"] > 0 for p in body["products"])
    assert [(u["service"], u["version"], u["status"]) for u in body["upstreams"]] == [
        ("catalog", "v1", 200), ("pricing", "v2", 200)]
    assert body["upstreams"][0]["instance"] == f"catalog-v1-{catalog.pid}"
    # The HTML page shows the products and who served each part.
    async with http.get(f"{web_.url}/") as resp:
        page = await resp.text()
    assert resp.status == 200 and "text/html" in resp.headers["content-type"]
    assert "Wooden train" in page and "pricing v2" in page and f"catalog-v1-{catalog.pid}" in page


async def test_web_checkout_pays_through_payments(start, http):
    payments = start("payments")
    web_ = start("web", PAYMENTS_URL=payments.url)
    status, body = await send_json(http, "POST", f"{web_.url}/api/checkout", json={"order_id": "o-7", "items": ["p1"]})
    assert status == 200, body
    assert (body["status"], body["order_id"], body["payment"]["status"]) == ("ok", "o-7", "paid")
    assert body["upstreams"][0]["service"] == "payments"
    # No body at all: web makes up an order id.
    status, body = await send_json(http, "POST", f"{web_.url}/api/checkout")
    assert status == 200 and len(body["order_id"]) == 36
    assert (await get_json(http, f"{payments.url}/charges"))[1]["charges"] == 2


async def test_web_answers_502_not_503_when_payments_fails(start, http):
    payments = start("payments", FAILURE_RATE="1")
    web_ = start("web", PAYMENTS_URL=payments.url)
    status, body = await send_json(http, "POST", f"{web_.url}/api/checkout", json={})
    assert status == 502, body
    assert body["upstream_status"] == 503 and "payments" in body["error"]
    assert body["upstreams"][0]["instance"] == f"payments-v1-{payments.pid}"


@pytest.mark.parametrize("env, complaint", [
    ({}, "set CATALOG_URL or HTTP_PROXY"),
    ({"CATALOG_URL": "http://127.0.0.1:{closed}"}, "catalog failed"),
])
async def test_web_answers_502_when_it_cannot_reach_an_upstream(start, http, env, complaint):
    env = {k: v.format(closed=free_port()) for k, v in env.items()}
    web_ = start("web", **env)
    status, body = await get_json(http, f"{web_.url}/api/products")
    assert status == 502, body
    assert complaint in body["error"] and body["upstream_status"] is None
    async with http.get(f"{web_.url}/") as resp:
        assert resp.status == 502 and complaint in await resp.text()


async def test_web_forwards_trace_headers_to_every_upstream(start, http):
    seen = []

    async def echo(request):
        seen.append((request.path, dict(request.headers)))
        return web.json_response(fake_upstream_answer("catalog", request.path))

    async with stand_in(echo) as url:
        web_ = start("web", CATALOG_URL=url, PRICING_URL=url)
        status, _ = await get_json(http, f"{web_.url}/api/products", headers={**TRACE_HEADERS, "x-private": "no"})
        assert status == 200
    assert [path for path, _ in seen] == ["/items", "/prices"]
    for _, headers in seen:
        got = {k.lower(): v for k, v in headers.items()}
        assert {k: got.get(k) for k in TRACE_HEADERS} == TRACE_HEADERS
        assert "x-private" not in got  # only the trace headers travel


async def test_web_calls_upstreams_by_name_through_http_proxy(start, http):
    # A forward proxy sees the absolute-form target: "GET http://catalog/items".
    targets = []

    async def proxy(request):
        targets.append((request.method, request.raw_path, request.headers.get("Host")))
        return web.json_response(fake_upstream_answer(request.headers["Host"], request.path))

    async with stand_in(proxy) as url:
        web_ = start("web", HTTP_PROXY=url)
        status, body = await get_json(http, f"{web_.url}/api/products")
        assert status == 200, body
    assert targets[0] == ("GET", "http://catalog/items", "catalog")
    assert targets[1][1].startswith("http://pricing/prices?ids=p1")
    assert [u["service"] for u in body["upstreams"]] == ["catalog", "pricing"]
