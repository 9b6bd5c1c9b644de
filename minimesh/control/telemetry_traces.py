"""Spans from request events, and a bounded store of recent traces.

One event (proxy/observe/telemetry.py) becomes one span: a "server" span for an
inbound event, a "client" span for an outbound one, a "gateway" span for the
gateway's. When the request was retried, each attempt becomes a child span of
the client span ("attempt"), as Envoy does with `spawn_upstream_span`. Trace
headers carry the client span's id, so the callee's server span is a child of
the client span, beside the attempts (Envoy's default).

The store keeps the events of the most recently active traces, at most
`max_traces` of them and `MAX_SPANS` events each: old traces fall out as new
ones come in. Spans are made from the events when a trace is asked for.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable

MAX_SPANS = 1000
KIND = {"inbound": "server", "outbound": "client", "gateway": "gateway"}


def flag_list(flags) -> list[str]:
    """A record's response flags: Envoy's "URX,UF" ("-" for none), or already a list."""
    if isinstance(flags, list):
        return list(flags)
    return [] if flags in (None, "", "-") else str(flags).split(",")


def attempt_span_id(span_id: str, number: int) -> str:
    """A stable id for attempt `number` of a client span (the sidecar sends none, to stay cheap)."""
    return hashlib.blake2b(f"{span_id}/{number}".encode(), digest_size=8).hexdigest()


def spans_of(event: dict, resolve: Callable[[str | None], dict | None]) -> list[dict]:
    start, ms = float(event.get("start") or 0), float(event["duration_ms"])
    kind = KIND.get(event["reporter"], "client")
    path = event.get("path") or ""
    if kind == "server":
        parts = (event.get("peer") or "").split(";")
        peer = {"service": parts[0] or None, "instance": parts[2] if len(parts) > 2 else None}
    else:
        final = resolve(event.get("endpoint")) or {}
        peer = {"service": event.get("destination") or event.get("authority"), "instance": final.get("instance")}
    span = {
        "trace_id": event["trace_id"], "span_id": event["span_id"], "parent_id": event.get("parent_id"),
        "kind": kind, "service": event["service"], "version": event["version"], "instance": event["instance"],
        "peer": peer, "name": f"{event.get('method', '')} {path.split('?', 1)[0]}".strip(),
        "method": event.get("method"), "authority": event.get("authority"), "path": path,
        "route": event.get("route"), "status": event["status"], "flags": flag_list(event.get("flags")),
        "start": start, "duration_ms": ms, "mtls": bool(event.get("mtls")),
    }
    spans = [span]
    attempts = event.get("tries") or []
    if kind != "server" and len(attempts) > 1:
        for number, (endpoint, status, error, offset_ms, duration_ms) in enumerate(attempts, 1):
            where = resolve(endpoint) or {}
            spans.append({
                **span, "span_id": attempt_span_id(span["span_id"], number), "parent_id": span["span_id"],
                "kind": "attempt", "name": f"attempt {number}", "status": status,
                "flags": [error.split(":", 1)[0]] if error else [], "error": error,
                "peer": {"service": peer["service"], "instance": where.get("instance") or endpoint},
                "start": start + float(offset_ms) / 1000, "duration_ms": float(duration_ms),
            })
    return spans


class TraceStore:
    def __init__(self, resolve: Callable[[str | None], dict | None], max_traces: int = 2000):
        self.resolve = resolve
        self.max_traces = max_traces
        self.traces: OrderedDict[str, list[dict]] = OrderedDict()  # trace id -> its events

    def add(self, event: dict) -> None:
        trace_id = event["trace_id"]
        trace = self.traces.get(trace_id)
        if trace is None:
            trace = self.traces[trace_id] = []
            while len(self.traces) > self.max_traces:
                self.traces.popitem(last=False)
        else:
            self.traces.move_to_end(trace_id)
        if len(trace) < MAX_SPANS:
            trace.append(event)

    def spans(self, trace_id: str) -> list[dict] | None:
        events = self.traces.get(trace_id)
        return None if events is None else [s for e in events for s in spans_of(e, self.resolve)]

    def get(self, trace_id: str) -> dict | None:
        spans = self.spans(trace_id.lower())
        if spans is None:
            return None
        return {**summary(trace_id.lower(), spans), "spans": sorted(spans, key=lambda s: s["start"])}

    def recent(self, limit: int = 50, service: str | None = None, slowest: bool = False) -> list[dict]:
        found = [summary(t, self.spans(t)) for t, events in reversed(self.traces.items())
                 if service is None or any(e["service"] == service for e in events)]
        if slowest:
            found.sort(key=lambda t: t["duration_ms"], reverse=True)
        return found[:limit]


def summary(trace_id: str, spans: list[dict]) -> dict:
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_id"] not in ids] or spans
    root = min(roots, key=lambda s: s["start"])
    start = min(s["start"] for s in spans)
    end = max(s["start"] + s["duration_ms"] / 1000 for s in spans)
    return {"trace_id": trace_id, "start": start, "duration_ms": round((end - start) * 1000, 3),
            "spans": len(spans), "services": sorted({s["service"] for s in spans}),
            "root": {"service": root["service"], "name": root["name"], "status": root["status"],
                     "authority": root["authority"]},
            "errors": sum(1 for s in spans if not isinstance(s["status"], int) or s["status"] >= 500)}
