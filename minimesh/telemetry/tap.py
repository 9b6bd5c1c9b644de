"""`minimesh tap`: one line per request, like `linkerd viz tap`.

    12:04:31.250 gateway → web/v1 (web-v1-0)  GET /api/products  200  12.3ms  flags=-  trace=4bf92f35

and a line for each outlier ejection and return, decided by the caller's sidecar:

    12:04:32.101 web/v1 (web-v1-0) ✗ payments/v1 (payments-v1-0)  ejected for 30s (consecutive5xxErrors 1, ejection 1)
    12:05:02.330 web/v1 (web-v1-0) ✓ payments/v1 (payments-v1-0)  returned after 30s
"""

from __future__ import annotations

import time

from minimesh.control.telemetry_events import describe


def who(side: dict) -> str:
    service = side.get("service") or "?"
    version = f"/{side['version']}" if side.get("version") else ""
    instance = f" ({side['instance']})" if side.get("instance") else ""
    return f"{service}{version}{instance}"


def format_tap(e: dict) -> str:
    ts = e.get("ts") or time.time()
    clock = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int((ts % 1) * 1000):03d}"
    if e.get("kind") == "outlier":
        mark = "✗" if e.get("event") == "ejected" else "✓"
        return f"{clock} {who(e['source'])} {mark} {who(e['destination'])}  {describe(e)}"
    flags = ",".join(e.get("flags") or []) or "-"
    extra = f"  retries={e['retries']}" if e.get("retries") else ""
    side = "" if e.get("reporter") != "inbound" else "  [inbound]"
    mtls = "  mtls" if e.get("mtls") else ""
    return (f"{clock} {who(e['source'])} → {who(e['destination'])}  {e.get('method')} {e.get('path')}  "
            f"{e.get('status')}  {e.get('duration_ms', 0):.1f}ms  flags={flags}{extra}{mtls}{side}  "
            f"trace={(e.get('trace_id') or '-')[:8]}")
