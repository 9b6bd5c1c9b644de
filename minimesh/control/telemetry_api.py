"""The telemetry part of the /v1 API: events in, rollups, tap and traces out.

    POST /v1/telemetry        {"node", "events": [...]}  from sidecars, in batches
    GET  /v1/stat             rollups over ?window=60 seconds (workloads, edges, routes)
    GET  /v1/tap              long poll: ?since=<seq>&timeout=<s>&service=&status=&reporter=
    GET  /v1/traces           recent traces: ?limit=50&service=&sort=recent|slowest
    GET  /v1/traces/{id}      one trace with its spans

The shapes are documented in notes/contracts.md ("Telemetry API"); the TUI
and `minimesh stat/tap/trace` use nothing else.
"""

from __future__ import annotations

import os

from aiohttp import web

from minimesh.config.namespaces import workload_name
from minimesh.pki.spiffe import reporter_of
from minimesh.control.access import CALLER, Role
from minimesh.control.bodies import read_json
from minimesh.control.telemetry import TelemetryHub, tap_filter
from minimesh.control.telemetry_window import MAX_WINDOW_S
from minimesh.control.telemetry_zipkin import ZIPKIN_ENV, ZipkinExporter

HUB = web.AppKey("telemetry_hub", TelemetryHub)
MAX_TAP_TIMEOUT = 60.0


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _number(request: web.Request, name: str, default: float, lo: float, hi: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}")
    return value


def foreign_reports(service: str, events: list, tallies) -> list[str]:
    """What in a batch from `service`'s sidecar speaks for another service (a workload reports as itself)."""
    foreign = {e.get("service") for e in events if isinstance(e, dict) and e.get("service") != service}
    for t in tallies if isinstance(tallies, list) else ():
        key = t.get("key") if isinstance(t, dict) else None
        # workload and edge tallies name their reporter first; route tallies name the destination
        if isinstance(key, list) and len(key) > 1 and key[0] in ("workload", "edge") and key[1] != service:
            foreign.add(key[1])
    return sorted(str(f) for f in foreign)


async def post_events(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body.get("events"), list):
        return _bad("telemetry: body must be {\"node\": ..., \"events\": [...]}")
    caller = request[CALLER]
    if caller.role is Role.WORKLOAD:
        foreign = foreign_reports(reporter_of(caller.service), body["events"], body.get("tallies"))
        if foreign:
            return web.json_response({"error": f"telemetry: {caller.identity} reports only for "
                                               f"{caller.service!r}, not for {', '.join(foreign)}"}, status=403)
    hub = request.app[HUB]
    accepted = hub.ingest(body["events"], body.get("tallies"))
    if isinstance(body.get("ejections"), list) and isinstance(body.get("node"), str):
        hub.ejections.report(body["node"], body["ejections"])
    return web.json_response({"accepted": accepted, "tap": hub.tapping})


async def get_stat(request: web.Request) -> web.Response:
    try:
        window = _number(request, "window", 60, 1, MAX_WINDOW_S)
    except ValueError as e:
        return _bad(f"stat: {e}")
    return web.json_response(request.app[HUB].stat(window))


async def get_tap(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    q = request.query
    try:
        timeout = _number(request, "timeout", 10, 0, MAX_TAP_TIMEOUT)
        since = int(_number(request, "since", hub.seq, 0, float("inf")))
    except ValueError as e:
        return _bad(f"tap: {e}")
    if q.get("reporter") not in (None, "", "source", "destination"):
        return _bad("tap: reporter must be 'source' or 'destination'")
    match = tap_filter(q.get("service") or None, q.get("status") or None, q.get("reporter") or None)
    events = await hub.wait_tap(since, match, timeout)
    limit = int(q.get("limit", "1000")) if q.get("limit", "1000").isdigit() else 1000
    events = events[:limit]
    next_seq = events[-1]["seq"] if events and len(events) == limit else hub.seq
    return web.json_response({"events": events, "next": next_seq})


async def list_traces(request: web.Request) -> web.Response:
    q = request.query
    try:
        limit = int(_number(request, "limit", 50, 1, 1000))
    except ValueError as e:
        return _bad(f"traces: {e}")
    if q.get("sort", "recent") not in ("recent", "slowest"):
        return _bad("traces: sort must be 'recent' or 'slowest'")
    traces = request.app[HUB].traces.recent(limit, q.get("service") or None, q.get("sort") == "slowest")
    return web.json_response({"traces": traces})


async def get_trace(request: web.Request) -> web.Response:
    trace_id = request.match_info["trace_id"]
    trace = request.app[HUB].traces.get(trace_id)
    if trace is None:
        return web.json_response({"error": f"no trace {trace_id!r} (traces are kept for the most recent "
                                           f"{request.app[HUB].traces.max_traces})"}, status=404)
    return web.json_response(trace)


def _registry_views(plane):
    """(resolve, workloads) over the registry: inbound address -> instance, and instances per (service, version)."""
    cache = {"generation": None, "by_address": {}}

    def by_address() -> dict:
        if cache["generation"] != plane.registry.generation:
            cache["by_address"] = {
                inst.registration.addresses.get("inbound"): {"service": workload_name(inst.registration.service,
                                                                                      inst.registration.namespace,
                                                                                      inst.registration.kind),
                                                             "version": inst.registration.version,
                                                             "instance": inst.registration.instance}
                for inst in plane.registry.instances() if inst.registration.addresses.get("inbound")}
            cache["generation"] = plane.registry.generation
        return cache["by_address"]

    def resolve(address):
        return by_address().get(address) if address else None

    def workloads() -> dict:
        counts: dict = {}
        for info in by_address().values():
            key = (info["service"], info["version"])
            counts[key] = counts.get(key, 0) + 1
        return counts

    return resolve, workloads


def add_telemetry(app: web.Application, plane) -> TelemetryHub:
    """Create the hub (and the Zipkin exporter when configured) and add the routes."""
    resolve, workloads = _registry_views(plane)
    zipkin_url = os.environ.get(ZIPKIN_ENV, "").strip()
    exporter = ZipkinExporter(zipkin_url) if zipkin_url else None
    hub = TelemetryHub(resolve, workloads, on_spans=exporter.add if exporter else None)
    app[HUB] = hub
    if exporter is not None:
        async def zipkin(_app):
            exporter.start()
            yield
            await exporter.stop()
        app.cleanup_ctx.append(zipkin)
    app.router.add_post("/v1/telemetry", post_events)
    app.router.add_get("/v1/stat", get_stat)
    app.router.add_get("/v1/tap", get_tap)
    app.router.add_get("/v1/traces", list_traces)
    app.router.add_get("/v1/traces/{trace_id}", get_trace)
    return hub
