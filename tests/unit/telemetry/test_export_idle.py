"""An idle sidecar's exporter sleeps: no wake-up per interval while nothing is noted, one batch after traffic.

A real exporter posts to a real HTTP server on a loopback port standing in
for the control plane's POST /v1/telemetry; the requests are real
`RequestTelemetry` notes. What is counted is how often the exporter's loop
flushed, and what arrived.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from multidict import CIMultiDict

from minimesh.proxy.message import Journey, Request
from minimesh.proxy.observe.export import TelemetryExporter
from minimesh.proxy.observe.metrics import MeshMetrics
from minimesh.proxy.observe.telemetry import RequestTelemetry
from tests.support.control import wait_for

INTERVAL = 0.02


class Hub:
    """A stand-in control plane: keeps every telemetry batch it is sent."""

    def __init__(self):
        self.batches: list[dict] = []

    async def telemetry(self, request: web.Request) -> web.Response:
        self.batches.append(json.loads(await request.read()))
        return web.json_response({"accepted": 0, "tap": False})


async def started_hub() -> tuple[Hub, web.AppRunner, str]:
    hub = Hub()
    app = web.Application()
    app.router.add_post("/v1/telemetry", hub.telemetry)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return hub, runner, f"http://127.0.0.1:{port}"


class CountingExporter(TelemetryExporter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1
        await super().flush()


async def started_exporter() -> tuple[Hub, web.AppRunner, CountingExporter, RequestTelemetry]:
    """A running exporter to a stand-in hub, and the telemetry that notes requests for it."""
    hub, runner, url = await started_hub()
    metrics = MeshMetrics()
    exporter = CountingExporter(url, "web-v1-0", metrics, interval=INTERVAL)
    telemetry = RequestTelemetry({"service": "web", "version": "v1", "instance": "web-v1-0"}, metrics, exporter,
                                 sampling=0.0)
    exporter.start()
    return hub, runner, exporter, telemetry


def one_request(telemetry: RequestTelemetry, i: int) -> None:
    request = Request("GET", "/", "web", CIMultiDict({"x-request-id": f"r{i}"}),
                      journey=Journey("inbound", service="web"))
    telemetry.begin(request)
    telemetry.finish(request, 200, 1.5)


async def test_an_idle_exporter_sleeps_until_a_request_is_noted_then_sends_it():
    hub, runner, exporter, telemetry = await started_exporter()
    try:
        await wait_for(lambda: exporter.asleep, 5, interval=0.005)
        asleep_after = exporter.flushes
        await asyncio.sleep(30 * INTERVAL)  # 30 intervals of nothing: the old loop flushed 30 times
        assert exporter.flushes == asleep_after <= 1
        assert hub.batches == []

        for i in range(3):
            one_request(telemetry, i)
        await wait_for(lambda: hub.batches, 5, interval=0.005)
        tallies = hub.batches[0]["tallies"]
        assert sum(t["requests"] for t in tallies if t["key"][0] == "workload") == 3, tallies
        await wait_for(lambda: exporter.asleep, 5, interval=0.005)  # sent: asleep again
        flushed = exporter.flushes
        await asyncio.sleep(30 * INTERVAL)
        assert exporter.flushes == flushed
        assert len(hub.batches) == 1

        exporter.add('{"event":"outlier_ejected"}')  # a mesh event wakes it as a request does
        await wait_for(lambda: len(hub.batches) == 2, 5, interval=0.005)
        assert hub.batches[1]["events"] == [{"event": "outlier_ejected"}]
    finally:
        await exporter.stop()
        await runner.cleanup()


async def test_under_traffic_the_exporter_does_not_sleep_between_batches():
    hub, runner, exporter, telemetry = await started_exporter()
    try:
        deadline = time.monotonic() + 20 * INTERVAL
        i = 0
        while time.monotonic() < deadline:
            one_request(telemetry, i)
            i += 1
            await asyncio.sleep(INTERVAL / 4)
        await wait_for(lambda: exporter.asleep, 5, interval=0.005)
        counted = sum(t["requests"] for b in hub.batches for t in b["tallies"] if t["key"][0] == "workload")
        assert counted == i  # nothing noted while it slept was lost
        assert len(hub.batches) >= 3
    finally:
        await exporter.stop()
        await runner.cleanup()
