"""The sidecar's telemetry exporter against a real HTTP control plane that is down, busy, or refusing.

Request records are best effort: a batch the control plane does not take is
dropped and counted. The mesh's own events (an outlier ejection, a return)
are not: a tap that shows a return without the ejection before it would tell
the learner something false, so they go again with the next batch, in order.
"""

import json

import pytest
from aiohttp import web

from minimesh.proxy.observe.export import TelemetryExporter
from minimesh.proxy.observe.metrics import MeshMetrics
from minimesh.proxy.observe.telemetry import RequestTelemetry

pytestmark = pytest.mark.timeout(30)

WEB = {"service": "web", "version": "v1", "instance": "web-v1-0"}


class FakeControlPlane:
    """POST /v1/telemetry answering `status` while it is set, 200 afterwards; keeps the batches it took."""

    def __init__(self):
        self.status = 200
        self.taken: list[dict] = []

    async def telemetry(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.status == "reset":  # it took the request and went away without an answer
            request.transport.close()
            return web.Response()
        if self.status != 200:
            return web.json_response({"error": "not now"}, status=self.status)
        self.taken.append(body)
        return web.json_response({"accepted": len(body["events"]), "tap": False})


@pytest.fixture
async def control():
    fake = FakeControlPlane()
    app = web.Application()
    app.router.add_post("/v1/telemetry", fake.telemetry)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    await runner.cleanup()


class Reports:
    """Stands in for outlier.Outliers' reporting side: what the exporter reads when something changed."""
    changed = False

    def report(self):
        return [{"service": "catalog", "instance": "catalog-v1-2", "until": 1.0, "reason": "consecutive5xxErrors 1"}]


def ejection(what: str) -> dict:
    return {"event": f"outlier_{what}", "service": "catalog", "subset": None, "endpoint": "127.0.0.1:4102",
            "upstream_instance": "catalog-v1-2", "reason": "consecutive5xxErrors 1", "ejections": 1,
            "ejection_s": 1.0}


def sidecar(url: str) -> tuple[RequestTelemetry, TelemetryExporter]:
    metrics = MeshMetrics()
    exporter = TelemetryExporter(url, "web-v1-0", metrics)
    exporter.outliers = Reports()
    return RequestTelemetry(WEB, metrics, exporter, sampling=0.0), exporter


def events_of(batches: list[dict]) -> list[str]:
    return [e.get("event") or e["path"] for batch in batches for e in batch["events"]]


@pytest.mark.parametrize("trouble", [503, "reset"])
async def test_an_ejection_in_a_batch_that_failed_goes_with_the_next_batch_before_the_return(control, trouble):
    telemetry, exporter = sidecar(control.url)
    control.status = trouble
    exporter.add(json.dumps({"reporter": "outbound", "path": "/lost"}))
    telemetry.mesh_event(ejection("ejected"), "outbound")
    exporter.outliers.changed = True
    await exporter.flush()
    assert control.taken == [] and exporter.dropped == 1 and len(exporter.queue) == 1

    # The control plane is back; the instance came back meanwhile.
    control.status = 200
    telemetry.mesh_event(ejection("returned"), "outbound")
    exporter.add(json.dumps({"reporter": "outbound", "path": "/later"}))
    await exporter.flush()
    assert events_of(control.taken) == ["outlier_ejected", "outlier_returned", "/later"]
    # The ejection report that went with the failed batch went again, too.
    assert control.taken[0]["ejections"][0]["instance"] == "catalog-v1-2"
    assert exporter.dropped == 1 and exporter.queue == []
    await exporter.close()


async def test_a_batch_the_control_plane_refuses_is_dropped_events_and_all(control):
    telemetry, exporter = sidecar(control.url)
    control.status = 403  # refused (e.g. reporting for another service): sending it again changes nothing
    telemetry.mesh_event(ejection("ejected"), "outbound")
    await exporter.flush()
    assert exporter.dropped == 1 and exporter.queue == []
    control.status = 200
    telemetry.mesh_event(ejection("returned"), "outbound")
    await exporter.flush()
    assert events_of(control.taken) == ["outlier_returned"]
    await exporter.close()


async def test_events_kept_across_failures_are_bounded(control):
    telemetry, exporter = sidecar(control.url)
    control.status = 503
    for _ in range(400):
        telemetry.mesh_event(ejection("ejected"), "outbound")
    await exporter.flush()
    await exporter.flush()
    assert len(exporter.queue) == 256 and exporter.dropped == 400 - 256
    await exporter.close()
