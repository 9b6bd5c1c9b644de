"""Telemetry with a bare sidecar's defaults: counts always, records only when someone wants them.

Lessons run with every request logged and every trace recorded. A sidecar
started without those options (Istio's default profile) must still give the
control plane its full rollups, send a request's record only when its trace
is sampled or someone taps, and start tapping at once even after a quiet
spell. Real processes: a control plane, two sidecars, an echo app.
"""

import asyncio
import time

import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.control import wait_for
from tests.support.mesh import client_session, run_mesh, run_sidecar
from tests.support.shop import free_port, start_app

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]

NO_SAMPLING = ("--trace-sampling", "0")  # deterministic: no new trace is recorded
TRACE = "5bf92f3577b34da6a3ce929d0e0e4737"


async def echo_app(request):
    return web.json_response({"path": request.path})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pair(tmp_path_factory):
    """caller's sidecar → echo's sidecar → echo app, both sidecars with the defaults (and no sampling).

    (The caller has no app: the test itself sends through its outbound listener.)
    """
    runner, app_port = await start_app(echo_app)
    try:
        async with run_mesh(tmp_path_factory.mktemp("defaults") / "home") as mesh:
            async with run_sidecar(mesh.control_url, "echo", app_port, log_dir=mesh.log_dir,
                                   telemetry_args=NO_SAMPLING) as echo, \
                    run_sidecar(mesh.control_url, "caller", free_port(), log_dir=mesh.log_dir,
                                telemetry_args=NO_SAMPLING) as caller:
                await mesh.converged()
                yield mesh, caller, echo
    finally:
        await runner.cleanup()


async def get_json(url: str) -> dict:
    async with client_session() as http, http.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def call(caller, n: int, prefix: str, headers: dict | None = None) -> None:
    async with client_session() as http:
        for i in range(n):
            async with http.get(caller.outbound + f"/{prefix}/{i}",
                                headers={"Host": "echo", "x-request-id": f"{prefix}-{i}", **(headers or {})}) as r:
                assert r.status == 200, await r.text()


async def test_stat_counts_every_request_though_no_record_was_sent(pair):
    mesh, caller, echo = pair
    await call(caller, 40, "counted")
    # Both reporters' counts arrive as tallies: echo served 40, caller's edge to echo shows 40.
    await wait_for(lambda: _counted(mesh, 40), 5, what="40 requests to echo, from both sides, in /v1/stat")
    stat = await get_json(mesh.control_url + "/v1/stat?window=60")
    [edge] = [e for e in stat["edges"] if e["destination"]["service"] == "echo"]
    assert edge["requests"] == 40 and edge["success_rate"] == 1.0 and edge["latency_ms"]["p50"] > 0
    # ...but no record: nothing was sampled, and nobody was tapping (until this look at the tap ring).
    assert [e for e in (await get_json(mesh.control_url + "/v1/tap?since=0&timeout=0"))["events"]
            if (e["request_id"] or "").startswith("counted-")] == []
    # And no access log, which is off unless asked for.
    assert caller.access_log() == [] and echo.access_log() == []


async def _counted(mesh, n: int) -> bool:
    stat = await get_json(mesh.control_url + "/v1/stat?window=60")
    served = sum(w["requests"] for w in stat["workloads"] if w["service"] == "echo")
    called = sum(e["requests"] for e in stat["edges"] if e["destination"]["service"] == "echo")
    return served >= n and called >= n


async def test_a_tap_after_a_quiet_spell_still_sees_the_first_request_within_a_second(pair):
    mesh, caller, echo = pair
    # Idle sidecars: their last batch was answered "nobody taps", and that is old news now.
    await wait_for(lambda: _quiet(caller, echo), 10, what="both sidecars to go quiet")
    seq = (await get_json(mesh.control_url + "/v1/tap?timeout=0"))["next"]
    tap = asyncio.create_task(get_json(f"{mesh.control_url}/v1/tap?since={seq}&timeout=5&service=echo"))
    await wait_for(lambda: _tapping(mesh), 5, what="the hub to count the tap")
    await call(caller, 1, "first")
    finished = time.monotonic()
    lines = (await tap)["events"]
    seq = max([seq, *(e["seq"] for e in lines)])
    # The two sidecars' lines come in their own batches: keep tapping for the second, up to a second.
    while {e["reporter"] for e in lines if e["request_id"] == "first-0"} != {"outbound", "inbound"} \
            and time.monotonic() - finished < 1.0:
        more = (await get_json(f"{mesh.control_url}/v1/tap?since={seq}&timeout=0.5&service=echo"))["events"]
        lines += more
        seq = max([seq, *(e["seq"] for e in more)])
    delay = time.monotonic() - finished
    mine = [e for e in lines if e["request_id"] == "first-0"]
    assert {e["reporter"] for e in mine} == {"outbound", "inbound"}, lines
    assert delay < 1.0, f"tap lines after {delay:.2f}s"
    # While the tap lasts every request is sent, not only the first.
    await call(caller, 20, "while")
    seen: set = set()

    async def all_twenty() -> bool:
        nonlocal seq
        got = (await get_json(f"{mesh.control_url}/v1/tap?since={seq}&timeout=1&service=echo"))["events"]
        seq = max([seq, *(e["seq"] for e in got)])
        seen.update(e["request_id"] for e in got if e["reporter"] == "inbound")
        return {f"while-{i}" for i in range(20)} <= seen

    await wait_for(all_twenty, 5, what="a tap line for each of 20 requests")


async def _quiet(*sidecars) -> bool:
    states = [(await s.stats())["telemetry"] for s in sidecars]
    return all(not t["tapping"] and t["heard_s_ago"] is not None and t["heard_s_ago"] > 0.5 for t in states)


async def _tapping(mesh) -> bool:
    async with client_session() as http, http.post(mesh.control_url + "/v1/telemetry",
                                                   json={"node": "probe", "events": []}) as r:
        return (await r.json())["tap"]


async def test_a_caller_that_sampled_its_trace_gets_it_recorded_and_one_that_did_not_does_not(pair):
    mesh, caller, echo = pair
    await call(caller, 1, "sampled", {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    await call(caller, 1, "unsampled", {"traceparent": f"00-{TRACE[::-1]}-00f067aa0ba902b7-00"})

    async def recorded() -> bool:
        async with client_session() as http, http.get(f"{mesh.control_url}/v1/traces/{TRACE}") as r:
            return r.status == 200 and len((await r.json())["spans"]) == 2

    await wait_for(recorded, 5, what="the sampled trace's two spans")
    async with client_session() as http, http.get(f"{mesh.control_url}/v1/traces/{TRACE[::-1]}") as r:
        assert r.status == 404, await r.text()
