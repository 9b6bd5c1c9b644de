"""Pilot tests: every view and action of `minimesh tui`, driven by keys, against a real control plane.

The control plane is a real `minimesh control` process; the shop's instances
are registered in it and their request events (tests/tui/shop_events.py) are
POSTed to /v1/telemetry while the app runs, as sidecars would. Fault knobs
go to a real demo app; generated traffic to a real HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support.control import run_control_plane, wait_for
from tests.support.shop import astart_service
from tests.tui.shop_events import INSTANCES, ShopTraffic, feed, register_shop, registration
from tui.app import MeshTUI
from tui.client import ControlClient, HttpTransport
from tui.lesson_steps import locate

SIZE = (132, 38)
LESSON_FIXTURE = Path(__file__).parent / "lesson-fixture"


@contextlib.asynccontextmanager
async def fed_control_plane(home: Path, shoppers_per_tick: int = 4):
    """A real control plane with the shop registered and shoppers' events flowing in every 0.2 s."""
    async with run_control_plane(home, ttl=600) as cp:
        await register_shop(cp.url)
        traffic = ShopTraffic(seed=11)

        async def keep_feeding():
            async with aiohttp.ClientSession(trust_env=False) as http:
                while True:
                    await feed(cp.url, traffic.batch(shoppers_per_tick), http)
                    await asyncio.sleep(0.2)  # the traffic's pace, not a synchronisation

        feeder = asyncio.create_task(keep_feeding())
        try:
            yield cp
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)


def live_app(url: str, **kwargs) -> MeshTUI:
    return MeshTUI(ControlClient(HttpTransport(url)), window_s=30, interval=0.2, tap_interval=0.2, **kwargs)


def until(predicate):
    async def check():
        return predicate()
    return check


async def get_json(url: str) -> dict:
    async with aiohttp.ClientSession(trust_env=False) as http, http.get(url) as resp:
        return await resp.json()


async def test_services_view_shows_every_service_with_the_control_planes_figures(tmp_path):
    async with fed_control_plane(tmp_path) as cp:
        app = live_app(cp.url)
        async with app.run_test(size=SIZE) as pilot:
            # Every service of the shop gets a row, with traffic.
            wanted = {(s, v) for s, v, _ in INSTANCES.values() if s != "gateway"}
            await wait_for(until(lambda: {(w.service, w.version) for w in app.state.stat.workloads if w.rps > 0}
                                 >= wanted), 15, what="every service with traffic")
            table = app.query_one("#services-table")
            assert {k for k in table.keys} >= {f"{s}/{v}" for s, v in wanted}
            await wait_for(until(lambda: any(w.service == "payments" and w.requests >= 60
                                             for w in app.state.stat.workloads)), 15, what="60 payments requests")
            # Its success rate is the control plane's (payments fails ~30 % per attempt). The window moves
            # with every batch fed, so the TUI's last poll and our own read agree only when close in time:
            # read until they are (a loaded machine can put seconds between the two).
            async def agreed():
                stat = await get_json(cp.url + "/v1/stat?window=30")
                theirs = {(w["service"], w["version"]): w["success_rate"] for w in stat["workloads"]}
                mine = {(w.service, w.version): w.success for w in app.state.stat.workloads}
                both = mine.get(("payments", "v1")), theirs.get(("payments", "v1"))
                return both if None not in both and abs(both[0] - both[1]) < 0.05 else None
            mine, _ = await wait_for(agreed, 10, what="the TUI's payments success rate to be the control plane's")
            assert 0.5 < mine < 0.9
            # Sync and certificates: every sidecar ACKed, certificates a day long.
            row = table.get_row("catalog/v1")
            assert "✓" in str(row[10]) and "h" in str(row[11])
            await pilot.press("q")
        assert app.return_code in (0, None)


@pytest.mark.parametrize("keys, view", [
    (["2"], "edges"), (["3"], "routes"), (["4"], "tap"), (["5"], "trace"), (["6"], "lesson"),
    (["colon", *"edges", "enter"], "edges"), (["colon", *"top", "enter"], "routes"), (["1"], "services"),
])
async def test_keys_jump_between_views(tmp_path, keys, view):
    async with fed_control_plane(tmp_path) as cp:
        app = live_app(cp.url, start_view="lesson" if view == "services" else "services")
        async with app.run_test(size=SIZE) as pilot:
            for key in keys:
                await pilot.press(key)
            await wait_for(until(lambda: app.view == view and app.refreshes > 0), 10, what=f"the {view} view")
            assert app.query_one("ContentSwitcher").current == view


async def test_edges_and_routes_show_the_split_and_what_retries_hid(tmp_path):
    async with fed_control_plane(tmp_path) as cp:
        app = live_app(cp.url, start_view="edges")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(until(lambda: "web/v1>pricing/v2" in app.query_one("#edges-table").keys), 15,
                           what="the pricing canary edge")
            await wait_for(until(lambda: sum(e.requests for e in app.state.stat.edges if e.destination == "pricing")
                                 >= 80), 20, what="80 requests to pricing")
            await pilot.pause()
            split = str(app.query_one("#edges-table").get_row("web/v1>pricing/v2")[3])
            assert split.strip().endswith("%") and 5 <= int(split.split()[-1].rstrip("%")) <= 40
            await pilot.press("3")
            await wait_for(until(lambda: "payments:payments-retries" in app.query_one("#routes-table").keys), 10,
                           what="the payments route")
            row = app.query_one("#routes-table").get_row("payments:payments-retries")
            effective, actual = (float(str(row[i]).rstrip("%")) for i in (3, 4))
            assert effective > actual  # retries hid failures, and the view says how much
            assert "pts" in str(row[5])


async def test_tap_streams_filters_pauses_and_explains_a_retried_request(tmp_path):
    async with fed_control_plane(tmp_path) as cp:
        app = live_app(cp.url, start_view="tap")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(until(lambda: len(app.state.tap) > 20), 15, what="tap lines")
            # Filter: only payments' failures.
            await pilot.press("slash", *"payments 5xx", "enter")
            assert (app.filter_service, app.filter_status) == ("payments", "5xx")
            await wait_for(until(lambda: len(app.state.tap) >= 3), 15, what="filtered tap lines")
            assert all(e.status >= 500 and "payments" in (e.source.service, e.destination.service)
                       for e in app.state.tap)
            # Clear the filter, then select a retried request: its explanation names every attempt.
            await pilot.press("slash", "enter")
            await wait_for(until(lambda: any(e.retries for e in app.state.tap)), 15, what="a retried request")
            await pilot.press("space")  # pause, so the row stays put while we select it
            assert app.paused
            keys = app.query_one("#tap-table").keys
            index = next(i for i, k in enumerate(keys)
                         if next(e for e in app.state.tap if str(e.seq) == k).retries)
            app.query_one("#tap-table").move_cursor(row=index)
            await wait_for(until(lambda: app.selected_event is not None and app.selected_event.retries
                                 and app.selected_event.trace_id in app.state.traces), 10, what="its trace")
            await pilot.pause()
            text = str(app.query_one("#tap-explain").render())
            assert "payments-retries" in text and "#1" in text and "retried: answered 503" in text
            assert "spiffe://cluster.local/ns/default/sa/payments" in text
            # Paused: nothing moves.
            frozen = app.refreshes
            await asyncio.sleep(1.0)  # a negative check: ten refresh periods with no refresh
            assert app.refreshes == frozen
            # w: the waterfall of that request's trace, attempts and all.
            await pilot.press("w")
            await pilot.pause()
            body = str(app.query_one("#trace-body").render())
            assert "attempt 1" in body and "attempt 2" in body and app.selected_event.trace_id in body
            await pilot.press("space")
            await wait_for(until(lambda: app.refreshes > frozen), 10, what="refreshes after resume")


async def test_canary_keys_shift_the_weights(tmp_path):
    async with fed_control_plane(tmp_path) as cp:
        app = live_app(cp.url)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(until(lambda: "pricing/v2" in app.query_one("#services-table").keys), 15, what="pricing")
            table = app.query_one("#services-table")
            table.move_cursor(row=table.keys.index("pricing/v1"))

            async def weights():
                config = await get_json(cp.url + "/v1/config?kind=VirtualService")
                vs = next(r for r in config["resources"] if r["metadata"]["name"] == "pricing")
                return [d["weight"] for d in vs["spec"]["http"][0]["route"]]

            # The recorded shop starts at 80/20; ] moves 10 % to v2, [ [ moves 20 % back.
            await pilot.press("right_square_bracket")
            await wait_for(lambda: _eq(weights(), [70, 30]), 10, what="70/30")
            await pilot.press("left_square_bracket")
            await wait_for(lambda: _eq(weights(), [80, 20]), 10, what="80/20")
            await pilot.press("left_square_bracket")
            await wait_for(lambda: _eq(weights(), [90, 10]), 10, what="90/10")
            assert "v1 90% / v2 10%" in app.message


async def _eq(coro, value) -> bool:
    return (await coro) == value


async def test_fault_keys_set_the_apps_knobs(tmp_path):
    async with run_control_plane(tmp_path, ttl=600) as cp:
        payments = await astart_service("payments")
        try:
            body = registration("payments-v1-0", time.time())
            body["addresses"]["app"] = f"127.0.0.1:{payments.port}"
            async with aiohttp.ClientSession(trust_env=False) as http:
                async with http.post(cp.url + "/v1/register", json=body) as resp:
                    assert resp.status == 200
            app = live_app(cp.url)
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(until(lambda: "payments/v1" in app.query_one("#services-table").keys), 15,
                               what="payments")

                async def knobs():
                    return await get_json(f"http://127.0.0.1:{payments.port}/_fault")

                # f raises the failure rate a step (0 → 0.1), d the delay (0 → 100 ms), F and D lower them.
                await pilot.press("f")
                await wait_for(lambda: _field(knobs(), "failure_rate", 0.1), 10, what="failure_rate 0.1")
                await pilot.press("f")
                await wait_for(lambda: _field(knobs(), "failure_rate", 0.3), 10, what="failure_rate 0.3")
                await pilot.press("d")
                await wait_for(lambda: _field(knobs(), "delay_ms", 100), 10, what="delay 100")
                await pilot.press("F")
                await wait_for(lambda: _field(knobs(), "failure_rate", 0.1), 10, what="failure_rate back to 0.1")
                await pilot.press("D")
                await wait_for(lambda: _field(knobs(), "delay_ms", 0), 10, what="delay back to 0")
        finally:
            payments.stop(echo_logs=False)


async def _field(coro, key, value) -> bool:
    return abs(float((await coro).get(key, -1)) - value) < 1e-9


@contextlib.asynccontextmanager
async def recording_gateway():
    """A real HTTP server standing in for the gateway: (its URL, the (method, path) of every request)."""
    hits = []

    async def handler(request):
        hits.append((request.method, request.path))
        return web.json_response({"ok": True})

    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", hits
    finally:
        await runner.cleanup()


async def test_generate_traffic_key_sends_requests_through_the_gateway(tmp_path):
    async with recording_gateway() as (gateway_url, hits), run_control_plane(tmp_path, ttl=600) as cp:
        app = live_app(cp.url, gateway_url=gateway_url)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("g")
            await wait_for(until(lambda: ("POST", "/api/checkout") in hits and len(hits) >= 5), 15,
                           what="generated requests")
            await pilot.press("g")
            assert app._traffic is None and "traffic off" in app.message


async def test_generated_traffic_only_does_what_the_running_lesson_serves(tmp_path):
    # Issue 18, defect 9: lessons 04 and 05 have no payments service; checkouts could only fail
    # there and show a ghost `payments` row (a host outside the mesh).
    from tests.tui.shop_events import registration

    async with recording_gateway() as (gateway_url, hits), run_control_plane(tmp_path, ttl=600) as cp:
        async with aiohttp.ClientSession(trust_env=False) as http:
            for instance in ("web-v1-0", "catalog-v1-0", "pricing-v1-0"):  # lesson 05's shop: no payments
                async with http.post(f"{cp.url}/v1/register", json=registration(instance, time.time())) as r:
                    assert r.status == 200, await r.text()
        app = live_app(cp.url, gateway_url=gateway_url)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("g")
            await wait_for(until(lambda: len(hits) >= 6), 15, what="generated requests")
            await pilot.press("g")
    assert ("GET", "/api/products") in hits and ("POST", "/api/checkout") not in hits


async def test_lesson_panel_puts_the_next_step_in_force_and_checks_it(tmp_path):
    async with run_control_plane(tmp_path / "cp", ttl=600) as cp:
        home = tmp_path / "home"
        home.mkdir()
        app = live_app(cp.url, start_view="lesson", home=home, lesson=locate(str(LESSON_FIXTURE), home))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert "press n to put step 1 in force" in str(app.query_one("#lesson-body").render())
            await pilot.press("n")
            await wait_for(until(lambda: app.lesson.step == 1 and app.lesson_busy is None
                                 and app.lesson_verdicts is not None), 20, what="step 1 in force and checked")
            text = str(app.query_one("#lesson-body").render())
            assert "step 1: PASS" in text and "look: About 3 checkouts in 10 fail" in text
            assert json.loads((home / "lesson-step.json").read_text()) == {"lesson": "lesson-fixture", "step": 1}
            await pilot.press("c")
            await wait_for(until(lambda: app.lesson_busy is None and "step 1: PASS" in app.message), 20,
                           what="step 1 checked again")


async def test_help_and_quit(tmp_path):
    async with run_control_plane(tmp_path, ttl=600) as cp:
        app = live_app(cp.url)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("?")
            await pilot.pause()
            assert type(app.screen).__name__ == "HelpScreen"
            await pilot.press("x")  # any key closes it
            await pilot.pause()
            assert type(app.screen).__name__ == "Screen"
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code in (0, None) and not app.is_running
