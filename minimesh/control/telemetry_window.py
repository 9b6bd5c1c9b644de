"""Sliding-window rollups: counts and latency percentiles over the last N seconds.

Theory of operation. Every figure `minimesh stat` and the TUI show — requests
per second, success rate, p50/p95/p99 — is "over the last minute" (Linkerd's
default window). Keeping every request for a minute would cost memory in
proportion to the traffic; instead each key (a workload, an edge, a route)
keeps one small bucket per second, and a query merges the buckets that fall
inside the window. A bucket holds counters and a latency histogram whose bins
grow by 4 % each (so a percentile is within ~2 % of the truth whatever the
scale, from 0.1 ms to minutes), which merge by adding. Buckets older than the
longest window anyone may ask for are dropped as new ones arrive.

Pure: time comes in as an argument.
"""

from __future__ import annotations

from collections import deque

# The sidecars count (rollup.py), the hub merges: the same Tally, the same bins.
from minimesh.proxy.observe.rollup import Tally

MAX_WINDOW_S = 300


def figures(tally: Tally, window_s: float) -> dict:
    """The JSON figures of the control plane's telemetry API (see notes/contracts.md)."""
    def rate(part, whole):
        return round(part / whole, 4) if whole else None

    def ms(p):
        value = tally.percentile(p)
        return None if value is None else round(value, 2)

    return {
        "requests": tally.requests, "rps": round(tally.requests / window_s, 3),
        "success_rate": rate(tally.ok, tally.requests),
        "latency_ms": {"p50": ms(0.50), "p95": ms(0.95), "p99": ms(0.99)},
        "attempts": tally.attempts, "retries": max(0, tally.attempts - tally.requests) if tally.attempts else 0,
        "actual_success_rate": rate(tally.attempts_ok, tally.attempts),
        "mtls_share": rate(tally.mtls, tally.requests),
    }


class Window:
    """Per-key, per-second Tallies for the last MAX_WINDOW_S seconds."""

    def __init__(self, keep_s: int = MAX_WINDOW_S):
        self.keep_s = keep_s
        self.buckets: dict[tuple, deque] = {}  # key -> deque of (second, Tally), oldest first

    def tally(self, key: tuple, now: float) -> Tally:
        """The Tally of `key` for the current second, to add to."""
        second = int(now)
        buckets = self.buckets.get(key)
        if buckets is None:
            buckets = self.buckets[key] = deque()
        if not buckets or buckets[-1][0] != second:
            buckets.append((second, Tally()))
            while buckets and buckets[0][0] <= second - self.keep_s:
                buckets.popleft()
        return buckets[-1][1]

    def query(self, window_s: float, now: float) -> dict[tuple, Tally]:
        """Each key's merged Tally over the last `window_s` seconds (keys with no requests left out)."""
        since = int(now) - window_s
        out = {}
        for key, buckets in list(self.buckets.items()):
            merged = Tally()
            for second, tally in reversed(buckets):
                if second <= since:
                    break
                merged.add(tally)
            if merged.requests or merged.attempts:  # ("attempts", ...) keys count attempts only
                out[key] = merged
            elif buckets and buckets[-1][0] <= int(now) - self.keep_s:
                del self.buckets[key]  # nothing left inside any window: forget the key
        return out
