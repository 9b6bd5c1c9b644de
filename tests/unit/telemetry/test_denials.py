"""`minimesh stat` counts the requests AuthorizationPolicy denied, per edge, where they were denied."""

from minimesh.control.telemetry import TelemetryHub
from minimesh.proxy.observe.rollup import Tallies, count_request, latency_bin
from minimesh.telemetry.stat import format_stat


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def record(status, flags, peer="web;v1;web-1", reporter="inbound", service="payments"):
    return {"reporter": reporter, "service": service, "version": "v1", "instance": f"{service}-1", "peer": peer,
            "status": status, "flags": flags, "duration_ms": 1.0}


def test_denials_per_edge_from_records_and_from_tallies():
    hub = TelemetryHub(lambda e: None, dict, clock=Clock())
    # Records without tallies are rolled up one by one: 3 denied web -> payments, 1 allowed,
    # 1 app-made 403 (no RBAC flag: not a denial), 2 denied at the gateway.
    hub.ingest([record(403, "RBAC")] * 3 + [record(200, "-"), record(403, "-")]
               + [record(403, "RBAC", peer=None, reporter="gateway", service="gateway")] * 2)
    # A sidecar's tallies add to the same rows.
    tallies = Tallies()
    count_request(tallies.tally, "payments", "v1", True, False, latency_bin(1.0), True, denied_from=("catalog", "v1"))
    hub.ingest([], tallies.drain())
    doc = hub.stat(60)
    denied = {(d["source"]["service"], d["destination"]["service"]): d["denied"] for d in doc["denials"]}
    assert denied == {("web", "payments"): 3, ("catalog", "payments"): 1, ("outside", "gateway"): 2}
    text = format_stat(doc)
    rows = [line.split("  ") for line in text.split("DENIED (403 RBAC)", 1)[1].splitlines()[1:]]
    assert [[cell.strip() for cell in row if cell.strip()] for row in rows] == [
        ["1", "catalog v1", "payments v1"], ["2", "outside", "gateway v1"], ["3", "web v1", "payments v1"]]


def test_no_denials_no_section():
    hub = TelemetryHub(lambda e: None, dict, clock=Clock())
    hub.ingest([record(200, "-")])
    assert "DENIED" not in format_stat(hub.stat(60))
