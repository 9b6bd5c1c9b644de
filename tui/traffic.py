"""`g`: a little background traffic through the gateway, so a fresh stack has something to show.

A shopper every 100 ms or so: the product page's API and, one time in three,
a checkout — enough for every service of the shop to light up. Only what the
running lesson has: no checkout where there is no payments service (lessons
04 and 05), since it could only fail and show a ghost `payments` row for a
host outside the mesh. It runs in a worker thread and stops when told (or
when the app exits).
"""

from __future__ import annotations

import threading
import urllib.request

from tui.client import _opener

PATHS = (("GET", "/api/products"), ("GET", "/api/products"), ("POST", "/api/checkout"))


def plan(services: set[str] | None) -> tuple[tuple[str, str], ...]:
    """What a shopper does in a stack with these services (None: not known, the whole shop)."""
    if services is None:
        return PATHS
    if "web" not in services:
        return (("GET", "/"),)  # not the shop: the gateway's default service, whatever it is
    if "payments" not in services:
        return tuple(p for p in PATHS if p[1] != "/api/checkout")
    return PATHS


def shop(gateway_url: str, stop: threading.Event, interval: float = 0.1,
         services: set[str] | None = None) -> int:
    """Send requests until `stop` is set; returns how many were sent."""
    sent = 0
    paths = plan(services)
    while not stop.is_set():
        method, path = paths[sent % len(paths)]
        body = b'{"items": [1, 2]}' if method == "POST" else None
        request = urllib.request.Request(gateway_url.rstrip("/") + path, data=body, method=method,
                                         headers={"Content-Type": "application/json"} if body else {})
        try:
            with _opener.open(request, timeout=5) as resp:
                resp.read()
        except OSError:
            pass  # a failed request is traffic too: the views show it
        sent += 1
        stop.wait(interval)
    return sent
