"""The telemetry hub: sidecars' rollups and request records in; figures, a live tap and traces out.

Every sidecar sends batches to POST /v1/telemetry (proxy/observe/export.py): the
tallies it counted since its last batch, and the records (one per request per
reporter, proxy/observe/telemetry.py) of sampled traces — and of every request while
someone taps: the hub's answer tells the sidecars whether anyone is tapping
(a tap costs the proxies only while it runs, as Linkerd's does). The hub

- adds the tallies to sliding-window rollups (telemetry_window.py):
    workload  (service, version) as its inbound side saw it: Linkerd's `stat`
    edge      (source service+version → destination service+version), from the caller's side:
              effective success (after retries) and actual success (every attempt)
    route     (destination service, VirtualService route name), from the caller's side
    attempts  (destination service, version): every attempt that went there
    denied    (source service+version → destination service+version): requests an
              AuthorizationPolicy denied, counted where it denied them (inbound, or the gateway)
- appends each record to the tap ring, waking anyone long-polling GET /v1/tap
  (and each event of the mesh's own, an outlier ejection or return: telemetry_events.py);
- files it under its trace id in the trace store (telemetry_traces.py), and,
  when MINIMESH_ZIPKIN_URL is set, queues its spans for the Zipkin exporter.

A batch of records without tallies (from a test, or a recording) is rolled up
record by record, as the sidecars' tallies would have been.

Only the rollup is done on arrival. Tap lines and spans are built when someone
asks for them: events arrive thousands of times a second, questions rarely,
and on a small machine the control plane shares the CPU with the proxies.

"Success" is Linkerd's: an answer that is not a 5xx. "mTLS" is the share of
requests whose connection was mutual TLS. The JSON shapes are the contract
the TUI and `minimesh stat/tap/trace` read (notes/contracts.md, "Telemetry API").
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from typing import Callable

from minimesh.control.telemetry_events import check_event, event_line, is_mesh_event
from minimesh.control.telemetry_traces import TraceStore, flag_list, spans_of
from minimesh.control.telemetry_window import Window, figures
from minimesh.proxy.observe.rollup import Tally, count_request, is_success, latency_bin

TAP_SIZE = 10_000
TAP_LINGER_S = 15.0  # sidecars keep sending every record this long after the last tap request ended
REQUIRED = ("reporter", "service", "version", "instance", "status", "duration_ms")


def parse_peer(peer: str | None) -> dict:
    parts = (peer or "").split(";")
    return {"service": parts[0] or None, "version": parts[1] if len(parts) > 1 else None,
            "instance": parts[2] if len(parts) > 2 else None}


class Ejections:
    """What each sidecar last said it has ejected; an entry counts until its `until` (wall-clock)."""

    MAX_PER_NODE = 256

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.by_node: dict[str, list[dict]] = {}

    def report(self, node: str, entries: list) -> None:
        clean = []
        for e in entries[: self.MAX_PER_NODE]:
            if (isinstance(e, dict) and isinstance(e.get("instance"), str) and isinstance(e.get("service"), str)
                    and isinstance(e.get("until"), (int, float))):
                clean.append({"instance": e["instance"], "service": e["service"], "until": float(e["until"]),
                              "reason": str(e.get("reason", ""))[:200]})
        self.by_node[node[:200]] = clean

    def now(self) -> list[dict]:
        """[{"instance", "service", "by", "until", "reason"}] of ejections in force now."""
        now = self.clock()
        return [{**e, "by": node} for node, entries in sorted(self.by_node.items())
                for e in entries if e["until"] > now]


class TelemetryHub:
    def __init__(self, resolve: Callable[[str | None], dict | None], workloads: Callable[[], dict],
                 clock: Callable[[], float] = time.time, on_spans: Callable[[list], None] | None = None,
                 tap_size: int = TAP_SIZE, max_traces: int = 2000):
        self.resolve = resolve  # "host:port" of an inbound listener -> {"service","version","instance"} or None
        self.workloads = workloads  # () -> {(service, version): number of meshed instances}
        self.clock = clock
        self.on_spans = on_spans
        self.window = Window()
        self.traces = TraceStore(resolve, max_traces)
        self.tap: deque = deque(maxlen=tap_size)
        self.ejections = Ejections(clock)  # who has ejected whom (outlier detection), for `minimesh status`
        self.seq = 0
        self.received = 0
        self.rejected = 0
        self.tappers = 0  # GET /v1/tap requests waiting now
        self.tapped_until = 0.0  # and until when the last one to finish still counts as tapping
        self._changed = asyncio.Event()

    # --- in ----------------------------------------------------------------

    @property
    def tapping(self) -> bool:
        """Is anyone tapping? (What the answer to each batch tells the sidecars.)"""
        return self.tappers > 0 or self.clock() < self.tapped_until

    def ingest(self, events, tallies=None) -> int:
        """Take a batch of records (and the sender's tallies); returns how many records were usable.

        With `tallies` (a list, from a sidecar) the records only feed tap and
        traces: they are counted already. Without, each record is rolled up.
        """
        now = self.clock()
        counted = isinstance(tallies, list)
        if counted:
            self.add_tallies(tallies, now)
        taken = 0
        spans = []
        for event in events if isinstance(events, list) else ():
            if is_mesh_event(event):  # an ejection or return (telemetry_events.py): the tap only
                try:
                    check_event(event)
                except (TypeError, ValueError, KeyError):
                    self.rejected += 1
                    continue
                self.seq += 1
                self.tap.append((self.seq, event))
                taken += 1
                continue
            if not isinstance(event, dict) or any(k not in event for k in REQUIRED):
                self.rejected += 1
                continue
            try:
                self._check(event)
                if not counted:
                    self._rollup(event, now)
            except (TypeError, ValueError, KeyError, AttributeError):
                self.rejected += 1
                continue
            self.seq += 1
            self.tap.append((self.seq, event))
            if event.get("trace_id") and event.get("sampled", True):  # a tapped request of an unrecorded trace: tap only
                self.traces.add(event)
                if self.on_spans is not None:
                    spans.extend(spans_of(event, self.resolve))
            taken += 1
        self.received += taken
        if taken:
            self._changed.set()
            self._changed = asyncio.Event()
            if self.on_spans is not None and spans:
                self.on_spans(spans)
        return taken

    def add_tallies(self, tallies: list, now: float) -> None:
        """Add a sidecar's counts (proxy/observe/rollup.py) to the current second; a malformed one is refused."""
        for t in tallies:
            try:
                key = tuple(t["key"])
                if key[0] not in ("workload", "edge", "route", "attempts", "denied") or \
                        not all(k is None or isinstance(k, str) for k in key):
                    raise ValueError(key)
                part = Tally(int(t["requests"]), int(t["ok"]), int(t["attempts"]), int(t["attempts_ok"]),
                             int(t["mtls"]), Counter({int(b): int(n) for b, n in t["latency"]}))
            except (TypeError, ValueError, KeyError, IndexError):
                self.rejected += 1
                continue
            self.window.tally(key, now).add(part)

    @staticmethod
    def _check(e: dict) -> None:
        """What tap and traces read back later must be readable: a bad record is refused here."""
        float(e["duration_ms"]), float(e.get("start") or 0)
        if not isinstance(e.get("tries") or [], list) or not isinstance(e.get("flags") or [], (list, str)):
            raise TypeError("tries is a list, flags a list or a string")

    def _rollup(self, e: dict, now: float) -> None:
        """A full record the sidecar did not count itself: counted here by the same rule (rollup.py)."""
        tally_of = lambda key: self.window.tally(key, now)  # noqa: E731
        latency, mtls, ok = latency_bin(float(e["duration_ms"])), bool(e.get("mtls")), is_success(e["status"])
        denied = e["status"] == 403 and "RBAC" in flag_list(e.get("flags"))
        if e["reporter"] == "inbound":
            peer = parse_peer(e.get("peer")) if denied else None
            count_request(tally_of, e["service"], e["version"], True, ok, latency, mtls,
                          denied_from=(peer["service"] or "unknown", peer["version"] or "unknown") if denied else None)
            return
        dst_service = e.get("destination") or e.get("authority")
        version_of = lambda endpoint: (self.resolve(endpoint) or {}).get("version")  # noqa: E731
        attempts = [(is_success(a_status), version_of(endpoint))
                    for endpoint, a_status, _error, _offset, _duration in e.get("tries") or ()]
        count_request(tally_of, e["service"], e["version"], False, ok, latency, mtls,
                      dst_service, version_of(e.get("endpoint")), e.get("route"), attempts,
                      denied_from=("outside", None) if denied else None)

    def tap_event(self, seq: int, e: dict) -> dict:
        """An event as a tap line's data: who called whom, how it ended (or what a sidecar decided)."""
        if is_mesh_event(e):
            return event_line(seq, e, self.resolve)
        me = {"service": e["service"], "version": e["version"], "instance": e["instance"]}
        attempts = e.get("tries") or []
        if e["reporter"] == "inbound":
            source, destination = parse_peer(e.get("peer")), me
        else:
            final = self.resolve(e.get("endpoint")) or {}
            source = me
            destination = {"service": e.get("destination") or e.get("authority"),
                           "version": final.get("version"), "instance": final.get("instance")}
        ms, mtls, status = float(e["duration_ms"]), bool(e.get("mtls")), e["status"]
        return {
            "seq": seq, "ts": round(float(e.get("start") or 0) + ms / 1000, 3), "trace_id": e.get("trace_id"),
            "reporter": e["reporter"], "source": source, "destination": destination,
            "method": e.get("method"), "authority": e.get("authority"), "path": e.get("path"),
            "route": e.get("route"), "status": status, "flags": flag_list(e.get("flags")),
            "duration_ms": round(ms, 3), "attempts": len(attempts), "retries": max(0, len(attempts) - 1),
            "mtls": mtls, "external": bool(e.get("external")), "request_id": e.get("request_id"),
            "identity": e.get("identity"),  # the peer's verified SPIFFE ID (None: plaintext)
            "authz": e.get("authz") if isinstance(e.get("authz"), dict) else None,
        }

    # --- out ---------------------------------------------------------------

    def stat(self, window_s: float) -> dict:
        """Rollups over the last `window_s` seconds (GET /v1/stat)."""
        tallies = self.window.query(window_s, self.clock())
        meshed = self.workloads()
        effective: dict[tuple, object] = {}
        for key, tally in tallies.items():
            if key[0] == "edge":
                dst = key[3:5]
                if dst in effective:
                    effective[dst].add(tally)
                else:
                    effective[dst] = tally
        workloads = []
        names = {k[1:3] for k in tallies if k[0] == "workload"} | {k[3:5] for k in tallies if k[0] == "edge"}
        for service, version in sorted(names, key=lambda k: (str(k[0]), str(k[1]))):
            served = tallies.get(("workload", service, version))
            row = {"service": service, "version": version, "meshed": meshed.get((service, version), 0),
                   **(figures(served, window_s) if served else _empty(window_s))}
            eff, att = effective.get((service, version)), tallies.get(("attempts", service, version))
            row["effective_success_rate"] = figures(eff, window_s)["success_rate"] if eff else None
            row["actual_success_rate"] = (round(att.attempts_ok / att.attempts, 4)
                                          if att and att.attempts else row["success_rate"])
            row["retries"] = figures(eff, window_s)["retries"] if eff else 0
            workloads.append(row)
        edges = [{"source": {"service": k[1], "version": k[2]}, "destination": {"service": k[3], "version": k[4]},
                  **figures(t, window_s), "effective_success_rate": figures(t, window_s)["success_rate"]}
                 for k, t in sorted(tallies.items(), key=lambda kv: str(kv[0])) if k[0] == "edge"]
        routes = [{"service": k[1], "route": k[2], **figures(t, window_s),
                   "effective_success_rate": figures(t, window_s)["success_rate"]}
                  for k, t in sorted(tallies.items(), key=lambda kv: str(kv[0])) if k[0] == "route"]
        denials = [{"source": {"service": k[1], "version": k[2]}, "destination": {"service": k[3], "version": k[4]},
                    "denied": t.requests, "rps": figures(t, window_s)["rps"]}
                   for k, t in sorted(tallies.items(), key=lambda kv: str(kv[0])) if k[0] == "denied"]
        return {"window_s": window_s, "workloads": workloads, "edges": edges, "routes": routes, "denials": denials}

    def tap_since(self, since: int, match: Callable[[dict], bool]) -> list[dict]:
        found = []
        for seq, event in reversed(self.tap):  # newest first: a reader usually wants only the last few
            if seq <= since:
                break
            tap = self.tap_event(seq, event)
            if match(tap):
                found.append(tap)
        return found[::-1]

    async def wait_tap(self, since: int, match: Callable[[dict], bool], timeout: float) -> list[dict]:
        """Events after `since` that `match`; waits up to `timeout` seconds for the first one.

        While it waits (and TAP_LINGER_S after), the hub tells sidecars someone is tapping.
        """
        self.tappers += 1
        try:
            return await self._wait_tap(since, match, timeout)
        finally:
            self.tappers -= 1
            self.tapped_until = max(self.tapped_until, self.clock() + TAP_LINGER_S)

    async def _wait_tap(self, since: int, match: Callable[[dict], bool], timeout: float) -> list[dict]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = self.tap_since(since, match)
            remaining = deadline - asyncio.get_running_loop().time()
            if found or remaining <= 0:
                return found
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return self.tap_since(since, match)


def _empty(window_s: float) -> dict:
    return {"requests": 0, "rps": 0.0, "success_rate": None, "latency_ms": {"p50": None, "p95": None, "p99": None},
            "attempts": 0, "retries": 0, "actual_success_rate": None, "mtls_share": None}


def tap_filter(service: str | None = None, status: str | None = None, reporter: str | None = None):
    """A predicate over tap events: service on either side; status '5xx', '503', '2xx'...; reporter side.

    reporter: 'source' (outbound and gateway: one line per hop), 'destination' (inbound), or None (all).
    An outlier ejection or return passes any status filter: it is why the statuses change.
    """
    def status_ok(value) -> bool:
        if not status:
            return True
        text = str(value)
        if status.lower().endswith("xx"):
            return text[:1] == status[:1]
        return text == status

    def match(e: dict) -> bool:
        if service and service not in (e["source"].get("service"), e["destination"].get("service")):
            return False
        if reporter == "source" and e["reporter"] == "inbound":
            return False
        if reporter == "destination" and e["reporter"] != "inbound":
            return False
        return "kind" in e or status_ok(e["status"])
    return match
