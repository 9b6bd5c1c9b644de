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

import os
import random
import sys
import time

from minimesh.pki.spiffe import in_trust_domain, reporter_of, service_of
from minimesh.proxy.observe import tracing
from minimesh.proxy.observe.export import TelemetryExporter, to_json
from minimesh.proxy.observe.record import reporter_head, request_record
from minimesh.proxy.observe.record import shown as _shown
from minimesh.proxy.observe.rollup import add_attempt, add_requests, attempts_key, latency_bin, request_rows
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
        self._heads: dict[str, str] = {}  # direction -> the opening of its records (record.py)
        self.noted: list[tuple] = []  # requests finished since the last count()
        if exporter is not None:
            exporter.count = self.count  # before each batch: the tallies must be up to date
            exporter.noted = lambda: bool(self.noted)

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
        exporter = self.exporter
        if exporter is not None and exporter.asleep:  # the first request after a quiet spell
            exporter.wake()
        if journey.direction == "inbound":
            self.noted.append((True, journey.peer, status, flags, mtls, duration_ms))
        else:
            config = journey.config
            self.noted.append((False, journey.service, request.authority, journey.endpoint, journey.route, status,
                               flags, mtls, id(config), config, journey.attempts, duration_ms))
        if len(self.noted) >= MAX_NOTED:
            self.count()
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
        tallies: the noted requests are grouped by kind, each kind's labels and
        tallies worked out once, and each group added at once.
        """
        noted, self.noted = self.noted, []
        if not noted:
            return
        groups: dict[tuple, list] = {}
        for facts in noted:
            kind = facts[:5] if facts[0] else facts[:9]  # inbound: peer, status, flags, mtls; outbound: ... the config
            group = groups.get(kind)
            if group is None:
                groups[kind] = [facts]
            else:
                group.append(facts)
        observe_all = self.metrics.observe_all
        tally_of = self.exporter.tallies.tally if self.exporter is not None else None
        attempt_rows: dict[tuple, object] = {}
        for kind, group in groups.items():
            inbound = kind[0]
            labels, rows, denied, ok, mtls, dst, versions = (
                self._inbound_kind if inbound else self._outbound_kind)(group[0], tally_of)
            durations = [facts[-1] for facts in group]
            if inbound:
                observe_all(labels, durations, 0)
                if rows:
                    add_requests(rows, denied, ok, [latency_bin(ms) for ms in durations], mtls)
                continue
            tries: dict[tuple, int] = {}  # (version tried, ok) -> attempts
            retries = 0
            for facts in group:
                attempts = facts[10]
                if len(attempts) > 1:
                    retries += len(attempts) - 1
                for a in attempts:
                    key = (versions.get(a.endpoint), a.status is not None and 0 < a.status < 500)
                    tries[key] = tries.get(key, 0) + 1
            observe_all(labels, durations, retries)
            if not rows:
                continue
            add_requests(rows, denied, ok, [latency_bin(ms) for ms in durations], mtls)
            for (version, a_ok), n in tries.items():
                row = attempt_rows.get((dst, version))
                if row is None:
                    row = attempt_rows[(dst, version)] = tally_of(attempts_key(dst, version))
                add_attempt(rows, row, a_ok, n)

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
        """The request's record as one JSON line: access-log line, span and tap line at once (record.py)."""
        head = self._heads.get(request.journey.direction)
        if head is None:
            head = self._heads[request.journey.direction] = reporter_head(self.identity, request.journey.direction)
        return request_record(head, self.identity, request, status, duration_ms, ended)

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
    The line is written before the next request is served, not batched per
    turn of the loop: tests and learners read the log the moment the answer
    arrives (a batched write saved ~4-10 µs of system time per request in the
    demo profile, and lost that race: bench/RESULTS.md, eighth run).
    """

    def __init__(self, enabled: bool, stream=None):
        self.stream = stream
        self.enabled = enabled
        self._second, self._stamp = -1, ""  # the formatted time, made once per second

    def write(self, json_line: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        (self.stream or sys.stderr).write(
            f"{self._stamp},{int(now % 1 * 1000):03d} INFO minimesh.access: {json_line}\n")
