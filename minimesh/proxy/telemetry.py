"""What a sidecar reports about each request: trace span, metrics, and an event for the control plane.

Per request, at the listener edge (edge.py):

    begin(request)    read the caller's trace context, start our span, tell the next hop
    finish(request)   count it in /metrics and queue one event for the control plane

One event per request per reporter is both the span and the rollup input:
it names the trace, our span and its parent, who called whom, the route,
status, response flags, timing, and each upstream attempt. The control plane
(minimesh/control/telemetry*.py) turns events into rollups, tap lines and
traces. The sidecar's inbound side makes a server span, the outbound side
(and the gateway) a client span whose retries become child "attempt" spans at
the control plane.

This is the hot path, so it stays small: no I/O, no formatting beyond a
dict, and the export queue is bounded — when the control plane cannot keep
up, events are dropped (and counted), never waited for. `TelemetryExporter`
sends the queue in batches a few times a second from a background task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import aiohttp

from minimesh.proxy import tracing
from minimesh.proxy.message import Request

log = logging.getLogger("minimesh.proxy")

# Who called: the outbound side names its workload to the inbound side (as
# Istio's metadata exchange does with x-envoy-peer-metadata); mTLS will vouch
# for it later.
PEER_HEADER = "x-minimesh-peer"
REPORTER = {"outbound": "source", "gateway": "source", "inbound": "destination"}
EXPORT_INTERVAL = 0.2  # seconds: a tap line shows up well within a second
MAX_QUEUE = 20_000
MAX_BATCH = 2_000
SWITCH_ENV = "MINIMESH_TELEMETRY"  # "off" (or 0/false/no) turns telemetry off; `--no-telemetry` sets it


def telemetry_enabled(environ=os.environ) -> bool:
    return environ.get(SWITCH_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


class RequestTelemetry:
    """Trace context, metrics and events for the requests of one sidecar."""

    def __init__(self, identity: dict, metrics, exporter: "TelemetryExporter | None"):
        self.identity = identity
        self.metrics = metrics
        self.exporter = exporter
        self.access_log = AccessLog()
        self.peer = f"{identity['service']};{identity['version']};{identity['instance']}"
        self._versions_of: tuple[object, dict] = (None, {})

    def begin(self, request: Request) -> None:
        journey = request.journey
        headers = request.headers
        parent = tracing.extract(headers)
        journey.span_id = tracing.new_span_id()
        if parent is None:
            journey.trace_id = tracing.new_trace_id()
        else:
            journey.trace_id, journey.parent_id = parent.trace_id, parent.span_id
        tracing.inject(headers, journey.trace_id, journey.span_id, parent)
        if journey.direction == "inbound":
            journey.peer = headers.pop(PEER_HEADER, None)
        else:
            headers[PEER_HEADER] = self.peer

    def routed(self, request: Request) -> None:
        """After routing: a request leaving the mesh does not carry our peer header."""
        if request.journey.external:
            request.headers.popall(PEER_HEADER, None)

    def finish(self, request: Request, status: int, duration_ms: float) -> None:
        journey = request.journey
        me = self.identity
        flags = ",".join(journey.flags) or "-"
        # Inbound, the mTLS layer records the caller's proven SPIFFE ID; either way it may set .mtls.
        mtls = journey.mtls or getattr(journey, "peer_identity", None) is not None
        security = "mutual_tls" if mtls else "none"
        if journey.direction == "inbound":
            src_service, src_version = _peer_workload(journey.peer)
            labels = ("destination", src_service, src_version, me["service"], me["version"],
                      str(status), flags, security)
        else:
            labels = ("source", me["service"], me["version"], journey.service or "unknown",
                      self._version_of(journey), str(status), flags, security)
        attempts = journey.attempts
        self.metrics.observe(labels, duration_ms, max(0, len(attempts) - 1))
        if self.exporter is None:
            return
        started = journey.started
        self.exporter.add({
            "trace_id": journey.trace_id, "span_id": journey.span_id, "parent_id": journey.parent_id,
            "reporter": journey.direction, "service": me["service"], "version": me["version"],
            "instance": me["instance"], "peer": journey.peer, "destination": journey.service,
            "route": journey.route, "subset": journey.subset, "method": request.method,
            "authority": request.authority, "path": request.path, "status": status,
            "flags": journey.flags, "start": time.time() - duration_ms / 1000, "duration_ms": duration_ms,
            "attempts": [[a.endpoint, a.status, a.error, (a.started - started) * 1000, a.duration_ms]
                         for a in attempts],
            "endpoint": journey.endpoint, "mtls": mtls, "external": journey.external,
            "request_id": request.headers.get("x-request-id"),
        })

    def _version_of(self, journey) -> str:
        """The version label of the endpoint that answered, from the snapshot in force (cached per snapshot)."""
        config, versions = self._versions_of
        if journey.config is not config:
            versions = {e.address: dict(e.labels).get("version", "unknown")
                        for (_, subset), cluster in getattr(journey.config, "clusters", {}).items()
                        if subset is None for e in cluster.endpoints}
            self._versions_of = (journey.config, versions)
        return versions.get(journey.endpoint, "unknown")


def _peer_workload(peer: str | None) -> tuple[str, str]:
    if not peer:
        return "unknown", "unknown"
    parts = peer.split(";")
    return parts[0] or "unknown", (parts[1] if len(parts) > 1 else "") or "unknown"


class AccessLog:
    """The access log's lines, one per request, written straight to stderr.

    Each line reads as the `minimesh.access` logger would write it
    ("<time> INFO minimesh.access: {json}"), without the logging machinery:
    a log record per request costs the proxy more than a third of the
    request's own work. (Non-interactive stderr is line-buffered: one write.)
    """

    def __init__(self, stream=None):
        self.stream = stream
        self.enabled = logging.getLogger("minimesh.access").isEnabledFor(logging.INFO)
        self._second, self._stamp = -1, ""  # the formatted time, made once per second

    def write(self, json_line: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        (self.stream or sys.stderr).write(
            f"{self._stamp},{int(now % 1 * 1000):03d} INFO minimesh.access: {json_line}\n")


class TelemetryExporter:
    """Sends queued events to the control plane's POST /v1/telemetry in batches.

    `add` never blocks and never does I/O; a full queue drops the event and
    counts it in minimesh_telemetry_dropped_total. A batch the control plane
    does not take (down, restarting) is dropped too: telemetry is best effort,
    traffic is not.
    """

    def __init__(self, control_url: str, node: str, metrics, interval: float = EXPORT_INTERVAL,
                 max_queue: int = MAX_QUEUE):
        self.url = control_url.rstrip("/") + "/v1/telemetry"
        self.node = node
        self.metrics = metrics
        self.interval = interval
        self.max_queue = max_queue
        self.queue: list[dict] = []
        self.sent = 0
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    def add(self, event: dict) -> None:
        if len(self.queue) >= self.max_queue:
            self.metrics.dropped.inc()
            return
        self.queue.append(event)

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5), trust_env=False)
        self._task = asyncio.create_task(self._run(), name="telemetry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self.flush()  # the last requests before shutdown still count
            await self._session.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
            try:
                async with self._session.post(self.url, json={"node": self.node, "events": batch}) as resp:
                    if resp.status >= 400:
                        raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status,
                                                          message=await resp.text())
                self.sent += len(batch)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                self.metrics.dropped.inc(len(batch))
                log.debug("telemetry batch of %d dropped: %s", len(batch), e)
                return
