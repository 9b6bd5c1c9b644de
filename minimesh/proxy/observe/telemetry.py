"""What a sidecar reports about each request: trace span, metrics, rollups, access log, tap.

Per request, at the listener edge (edge.py):

    begin(request)    read the caller's trace context, start our span, tell the next hop
    finish(request)   note it for counting; write its record where it is wanted
    count()           a few times a second: add the noted requests to /metrics and the rollups

The record — one JSON object per request per reporter — names the trace, our
span and its parent, who called whom, the route, status, response flags,
timing and each upstream attempt. It is the access log's line, a span of a
trace and a tap line at once, so it is made at most once, and only when one of
them wants it:

- the access log, when it is on (`--access-log`; off by default, as in Istio's
  default profile — lessons turn it on);
- the trace, when the trace is sampled: the caller's traceparent says so, or,
  where a trace starts, `--trace-sampling` percent of the time (Istio's 1 % by
  default; lessons record every trace);
- the tap, while someone is tapping (the control plane says so).

The mesh's own events — outlier detection ejecting an instance and letting it
back (outbound/outlier.py) — are records too (`mesh_event`): a line in the access log,
and a line in the tap.

What `minimesh stat` needs never takes a record: the rollups are counted here
(rollup.py) and sent as counts. This is the hot path, so it stays small: no
I/O beyond the access log's one write, and the export queue (export.py) is
bounded — when the control plane cannot keep up, records are dropped (and
counted), never waited for.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import random
import sys
import time
from functools import lru_cache

from minimesh.config.namespaces import namespace_of_key, telemetry_name
from minimesh.pki.spiffe import in_trust_domain, reporter_of, service_of
from minimesh.proxy.observe import tracing
from minimesh.proxy.observe.export import TelemetryExporter, to_json
from minimesh.proxy.observe.rollup import add_attempt, add_request, attempts_key, latency_bin, request_rows
from minimesh.proxy.message import Request

# Who called: the outbound side names its workload to the inbound side (as
# Istio's metadata exchange does with x-envoy-peer-metadata). The header is
# a claim, and the edge strips it from every request before any layer reads
# it (edge.py); only what the caller's certificate proves is kept
# (`verified_peer`): its service, and the header's version and instance only
# if the header names that same service. A plaintext caller is "unknown".
PEER_HEADER = "x-minimesh-peer"
SWITCH_ENV = "MINIMESH_TELEMETRY"  # "off" (or 0/false/no) turns telemetry off; `--no-telemetry` sets it
_OFF = ("off", "0", "false", "no")
MAX_NOTED = 10_000  # count() at once past this many, whatever the exporter is doing


def verified_peer(claimed: str | None, identity: str | None) -> str | None:
    """The calling workload "service;version;instance" as far as its certificate vouches for it."""
    account = service_of(identity) if identity and in_trust_domain(identity) else None
    service = reporter_of(account) if account is not None else None
    if service is None:
        return None  # plaintext, or a certificate naming no service of this mesh: unknown
    if claimed and claimed.split(";", 1)[0] == service:
        return claimed
    return f"{service};;"


def telemetry_enabled(environ=os.environ) -> bool:
    return environ.get(SWITCH_ENV, "on").strip().lower() not in _OFF


class RequestTelemetry:
    """Trace context, metrics, rollups and records for the requests of one sidecar."""

    def __init__(self, identity: dict, metrics, exporter: TelemetryExporter | None,
                 sampling: float = 1.0, access_log: "AccessLog | None" = None):
        self.identity = identity
        self.metrics = metrics
        self.exporter = exporter
        self.sampling = sampling  # the share of new traces recorded, 0..1
        self.access_log = access_log or AccessLog(False)
        self.peer = f"{identity['service']};{identity['version']};{identity['instance']}"
        self._versions_of: tuple[object, dict] = (None, {})
        self.noted: list[tuple] = []  # requests finished since the last count()
        if exporter is not None:
            exporter.count = self.count  # before each batch: the tallies must be up to date

    def begin(self, request: Request) -> None:
        journey = request.journey
        headers = request.headers
        parent = tracing.extract(headers)
        if parent is None:
            journey.trace_id, journey.span_id = tracing.new_trace()
            # Where a trace starts, its fate is decided once; every later hop follows the flag.
            journey.sampled = self.sampling >= 1 or random.random() < self.sampling
        else:
            journey.trace_id, journey.parent_id = parent.trace_id, parent.span_id
            journey.span_id = tracing.new_span_id()
            journey.sampled = parent.sampled
        tracing.inject(headers, journey.trace_id, journey.span_id, parent, journey.sampled)
        if journey.direction != "inbound":  # inbound: the edge set journey.peer from the certificate
            headers[PEER_HEADER] = self.peer

    def routed(self, request: Request) -> None:
        """After routing: a request leaving the mesh does not carry our peer header."""
        if request.journey.external:
            request.headers.popall(PEER_HEADER, None)

    def finish(self, request: Request, status: int, duration_ms: float) -> None:
        """Note the request for counting; make its record if anyone wants it.

        The counting itself (metrics and rollups) waits for `count()`, a few
        times a second: a tight loop over a few hundred noted requests runs
        several times faster than the same work spread over requests, with
        the proxy's own work evicting it from the CPU's caches in between.
        """
        journey = request.journey
        mtls = journey.mtls or journey.peer_identity is not None
        flags = ",".join(journey.flags) or "-"
        if journey.direction == "inbound":
            self.noted.append((True, journey.peer, status, flags, mtls, duration_ms))
        else:
            config = journey.config
            self.noted.append((False, journey.service, request.authority, journey.endpoint, journey.route, status,
                               flags, mtls, id(config), config, journey.attempts, duration_ms))
        if len(self.noted) >= MAX_NOTED:
            self.count()
        exporter = self.exporter
        if self.access_log.enabled:
            line = self.record(request, status, duration_ms, time.time())
            self.access_log.write(line)
            if exporter is not None and (journey.sampled or exporter.tapping):
                exporter.add(line)
        elif exporter is not None:
            ended = time.time()
            if journey.sampled or exporter.tapping:
                exporter.add(self.record(request, status, duration_ms, ended))
            elif ended > exporter.heard_until:  # has a tap begun? not known yet: keep it until we hear
                exporter.hold(self.record, request, status, duration_ms, ended)

    def count(self) -> None:
        """Add the requests noted since the last call to /metrics and to the rollups for the control plane.

        Requests alike but for their timing (the same caller or destination,
        route, status, flags, security) are counted under the same labels and
        tallies: those are worked out once per kind of request per call, then
        only added to. (The tallies live until the exporter drains them, after
        this call; `seen` lives for this call only.)
        """
        noted, self.noted = self.noted, []
        if not noted:
            return
        observe = self.metrics.observe
        tally_of = self.exporter.tallies.tally if self.exporter is not None else None
        seen: dict[tuple, tuple] = {}
        for facts in noted:
            inbound = facts[0]
            kind = facts[:5] if inbound else facts[:9]  # inbound: peer, status, flags, mtls; outbound: ... the config
            counted = seen.get(kind)
            if counted is None:
                counted = seen[kind] = (self._inbound_kind if inbound else self._outbound_kind)(facts, tally_of)
            labels, rows, denied, ok, mtls, dst, versions = counted
            duration_ms = facts[-1]
            if inbound:
                observe(labels, duration_ms, 0)
                if rows:
                    add_request(rows, denied, ok, latency_bin(duration_ms), mtls)
                continue
            attempts = facts[10]
            observe(labels, duration_ms, len(attempts) - 1 if len(attempts) > 1 else 0)
            if not rows:
                continue
            add_request(rows, denied, ok, latency_bin(duration_ms), mtls)
            for a in attempts:
                version = versions.get(a.endpoint)
                row = seen.get((dst, version))
                if row is None:
                    row = seen[(dst, version)] = tally_of(attempts_key(dst, version))
                add_attempt(rows, row, a.status is not None and 0 < a.status < 500)

    def _inbound_kind(self, facts: tuple, tally_of) -> tuple:
        """What an inbound request of this kind is counted under: (labels, rows, denied row, ok, mtls, -, -)."""
        me = self.identity
        _, peer, status, flags, mtls = facts[:5]
        src_service, src_version = _peer_workload(peer)
        labels = ("destination", src_service, src_version, me["service"], me["version"], str(status), flags,
                  "mutual_tls" if mtls else "none")
        if tally_of is None:
            return labels, (), None, False, mtls, None, None
        denied = status == 403 and "RBAC" in flags  # an AuthorizationPolicy said no, here
        rows, denied_row = request_rows(tally_of, me["service"], me["version"], True,
                                        denied_from=(src_service, src_version) if denied else None)
        return labels, rows, denied_row, 0 < status < 500, mtls, None, None

    def _outbound_kind(self, facts: tuple, tally_of) -> tuple:
        """What an outbound request of this kind is counted under: (..., the destination, endpoint versions)."""
        me = self.identity
        _, dst, authority, endpoint, route, status, flags, mtls, _, config = facts[:10]
        dst = _shown(dst) if dst else dst
        versions = self._versions(config)
        labels = ("source", me["service"], me["version"], dst or "unknown", versions.get(endpoint, "unknown"),
                  str(status), flags, "mutual_tls" if mtls else "none")
        if tally_of is None:
            return labels, (), None, False, mtls, None, versions
        # A request leaving the mesh is counted under the host it asked for.
        rows, denied_row = request_rows(tally_of, me["service"], me["version"], False, dst or authority,
                                        versions.get(endpoint), route,
                                        denied_from=("outside", None) if status == 403 and "RBAC" in flags else None)
        return labels, rows, denied_row, 0 < status < 500, mtls, dst or authority, versions

    def record(self, request: Request, status: int, duration_ms: float, ended: float) -> str:
        """The request's record as one JSON line: access-log line, span and tap line at once."""
        journey = request.journey
        me = self.identity
        started = journey.started
        return to_json({
            "reporter": journey.direction, "service": me["service"], "version": me["version"],
            "instance": me["instance"], "namespace": me.get("namespace", "default"), "peer": journey.peer,
            "method": request.method, "authority": request.authority, "path": request.path,
            # Who was called, as telemetry names it ('catalog', 'catalog.foo'), and its namespace (None: external).
            **_destination(journey, me),
            "route": journey.route, "subset": journey.subset,
            "status": status, "flags": ",".join(journey.flags) or "-", "duration_ms": round(duration_ms, 3),
            "start": round(ended - duration_ms / 1000, 6),
            "endpoint": journey.endpoint, "upstream_instance": journey.endpoint_instance,
            "attempts": len(journey.attempts),
            "tries": [[a.endpoint, a.status, a.error, round((a.started - started) * 1000, 3),
                       round(a.duration_ms, 3)] for a in journey.attempts],
            "mtls": journey.mtls or journey.peer_identity is not None, "external": journey.external,
            "upstream_security": journey.upstream_security,  # secure_naming.py: how the last attempt went out
            "identity": journey.peer_identity,  # the peer's SPIFFE ID from its verified certificate, or None
            "request_id": request.headers.get("x-request-id"),
            "trace_id": journey.trace_id, "span_id": journey.span_id, "parent_id": journey.parent_id,
            "sampled": journey.sampled, "authz": journey.authz,
        })

    def mesh_event(self, event: dict, reporter: str) -> None:
        """An event of the mesh's own (an outlier ejection or return): an access-log line and a tap line.

        `event` is what outbound/outlier.py tells (its "service" is the destination); the
        record names this sidecar as the reporter, as a request's record does.
        Events are rare, so they go to the control plane whether or not anyone
        taps: a learner's tap, started any time later, never misses one in flight.
        """
        me = self.identity
        line = to_json({
            "event": event["event"], "reporter": reporter, "service": me["service"], "version": me["version"],
            "instance": me["instance"], "destination": _shown(event["service"]), "subset": event.get("subset"),
            "endpoint": event.get("endpoint"), "upstream_instance": event.get("upstream_instance"),
            "reason": event.get("reason"), "ejections": event.get("ejections"),
            "ejection_s": event.get("ejection_s"), "time": round(time.time(), 6),
        })
        if self.access_log.enabled:
            self.access_log.write(line)
        if self.exporter is not None:
            self.exporter.add(line)

    def _versions(self, config) -> dict:
        """Endpoint address -> its version label, in the snapshot a request ran with (made once per snapshot)."""
        seen, versions = self._versions_of
        if config is not seen:
            versions = {e.address: dict(e.labels).get("version", "unknown")
                        for (_, subset), cluster in getattr(config, "clusters", {}).items()
                        if subset is None for e in cluster.endpoints}
            self._versions_of = (config, versions)
        return versions


def _destination(journey, me: dict) -> dict:
    if journey.direction == "inbound":  # this workload itself
        return {"destination": me["service"], "destination_namespace": me.get("namespace", "default")}
    if not journey.service:
        return {"destination": None, "destination_namespace": None}
    return {"destination": _shown(journey.service), "destination_namespace": namespace_of_key(journey.service)}


@lru_cache(maxsize=1024)
def _shown(key: str) -> str:
    """The destination's service key as telemetry names it: 'catalog', 'catalog.foo' (config/namespaces.py)."""
    return telemetry_name(key)


def _peer_workload(peer: str | None) -> tuple[str, str]:
    if not peer:
        return "unknown", "unknown"
    parts = peer.split(";")
    return parts[0] or "unknown", (parts[1] if len(parts) > 1 else "") or "unknown"


class AccessLog:
    """The access log's lines, one per request, written to stderr once per turn of the event loop.

    Each line reads as the `minimesh.access` logger would write it
    ("<time> INFO minimesh.access: {json}"), without the logging machinery:
    a log record per request costs the proxy more than a third of the
    request's own work. The lines of one turn of the loop (all the requests
    that finished in it) go out in one write, whole and in order, at the end
    of that turn (a write per line was a system call per request); outside a
    running loop, and at exit, a line is written at once.
    """

    def __init__(self, enabled: bool, stream=None):
        self.stream = stream
        self.enabled = enabled
        self._second, self._stamp = -1, ""  # the formatted time, made once per second
        self._lines: list[str] = []  # this turn's, not yet written
        self._loop = None  # the loop the lines are flushed on, found at the first write
        if enabled:
            atexit.register(self.flush)

    def write(self, json_line: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        self._lines.append(f"{self._stamp},{int(now % 1 * 1000):03d} INFO minimesh.access: {json_line}\n")
        if len(self._lines) == 1:
            loop = self._loop
            if loop is None or loop.is_closed():
                try:
                    loop = self._loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop runs here: nothing would flush later
                    self.flush()
                    return
            loop.call_soon(self.flush)

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if lines:
            stream = self.stream or sys.stderr
            stream.write("".join(lines))
            stream.flush()
