"""The mesh's own events in the tap: outlier detection ejecting an instance, and letting it back.

A request's record says who called whom and how it ended; an event says what
a sidecar decided on its own. Outlier detection lives in each caller's
sidecar (proxy/outbound/outlier.py), so its decisions are reported by that caller, the
way its requests are:

    {"event": "outlier_ejected", "reporter": "outbound", "service": "web", "version": "v1",
     "instance": "web-v1-0", "destination": "payments", "subset": null, "endpoint": "127.0.0.1:4102",
     "upstream_instance": "payments-v1-0", "reason": "consecutive5xxErrors 1", "ejections": 1,
     "ejection_s": 30.0, "time": 1764755073.25}

("outlier_returned" when the sweep lets it back.) The hub keeps events in the
same tap ring as requests, in the order they arrived, and hands them out as
tap lines with the request lines' keys (so every reader can show both), plus
`kind`, `event`, `reason`, `ejections` and `ejection_s`.
"""

from __future__ import annotations

from typing import Callable

MESH_EVENTS = {"outlier_ejected": "ejected", "outlier_returned": "returned"}
_TEXT = ("service", "version", "instance", "destination", "upstream_instance")


def is_mesh_event(e) -> bool:
    return isinstance(e, dict) and e.get("event") in MESH_EVENTS


def check_event(e: dict) -> None:
    """What a tap line is made of must be readable: a malformed event is refused (TypeError/ValueError)."""
    if e.get("reporter") not in ("outbound", "gateway"):
        raise ValueError("an outlier event is reported by the caller's side: reporter outbound or gateway")
    if not all(isinstance(e.get(k), str) for k in _TEXT):
        raise TypeError(f"an outlier event names {', '.join(_TEXT)} as strings")
    float(e["time"]), float(e.get("ejection_s") or 0), int(e.get("ejections") or 0)


def event_line(seq: int, e: dict, resolve: Callable[[str | None], dict | None]) -> dict:
    """An event as a tap line: the caller as source, the ejected instance as destination."""
    upstream = resolve(e.get("endpoint")) or {}
    return {
        "seq": seq, "ts": round(float(e["time"]), 3), "trace_id": None, "kind": "outlier",
        "event": MESH_EVENTS[e["event"]], "reporter": e["reporter"],
        "source": {"service": e["service"], "version": e["version"], "instance": e["instance"]},
        "destination": {"service": e["destination"], "version": upstream.get("version"),
                        "instance": e["upstream_instance"]},
        "subset": e.get("subset"), "endpoint": e.get("endpoint"), "reason": str(e.get("reason") or "")[:200],
        "ejections": int(e.get("ejections") or 0), "ejection_s": float(e.get("ejection_s") or 0),
        # the keys of a request's line, empty: a reader that knows only requests still reads it
        "method": None, "authority": None, "path": None, "route": None, "status": None, "flags": [],
        "duration_ms": 0.0, "attempts": 0, "retries": 0, "mtls": False, "external": False,
        "request_id": None, "identity": None, "authz": None,
    }


def describe(line: dict) -> str:
    """The event in words, for a tap line: "ejected for 30s (consecutive5xxErrors 1, ejection 1)"."""
    if line.get("event") == "ejected":
        return (f"ejected for {line.get('ejection_s', 0):g}s ({line.get('reason') or '?'}, "
                f"ejection {line.get('ejections', 0)})")
    return f"returned after {line.get('ejection_s', 0):g}s"
