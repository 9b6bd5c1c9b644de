"""Rollups a sidecar adds up itself, so the control plane is sent counts, not every request.

Theory of operation. `minimesh stat` and the TUI show, per workload, edge and
route: requests, success, latency percentiles, retries, effective and actual
success. Sending one event per request to the control plane and adding them
up there costs each proxy more than the request's own routing does (Istio
learnt this with Mixer, and moved its telemetry into the proxy in 1.5;
Linkerd's proxies always kept their own counters). So each sidecar keeps one
small tally per key and the exporter (telemetry.py) sends them a few times a
second, then starts again from zero. The control plane adds the tallies into
its sliding window (control/telemetry_window.py) exactly as it would have
added the requests one by one: the counters add, and so do the latency
histograms, because sidecar and hub use the same bins.

The keys are the hub's:

    ("workload", service, version)                        inbound: what this workload served
    ("edge", service, version, dst_service, dst_version)  outbound: who called whom, after retries
    ("route", dst_service, route)                         outbound: per VirtualService route
    ("attempts", dst_service, dst_version)                outbound: every upstream attempt
    ("denied", src_service, src_version, service, version)  requests an AuthorizationPolicy denied (403 RBAC)

A latency bin grows by 4 % from 0.01 ms, so a percentile read from merged
bins is within ~2 % of the truth at any scale.
"""

from __future__ import annotations

import math
from collections import Counter

GROWTH = 1.04
FLOOR_MS = 0.01
_LOG_GROWTH = math.log(GROWTH)


def latency_bin(ms: float) -> int:
    return max(0, int(math.log(max(ms, FLOOR_MS) / FLOOR_MS) / _LOG_GROWTH))


def bin_value(index: int) -> float:
    """The middle of a bin, in ms (geometric)."""
    return FLOOR_MS * GROWTH ** (index + 0.5)


class Tallies:
    """requests, ok, attempts, attempts_ok, mtls and a latency histogram, per key, since the last drain."""

    def __init__(self):
        self.counts: dict[tuple, list] = {}  # key -> [requests, ok, attempts, attempts_ok, mtls, Counter of bins]

    def _row(self, key: tuple) -> list:
        row = self.counts.get(key)
        if row is None:
            row = self.counts[key] = [0, 0, 0, 0, 0, Counter()]
        return row

    def served(self, key: tuple, ok: bool, latency: int, mtls: bool) -> list:
        """Count one request under `key`; `latency` is its bin. Returns the row, to count attempts on."""
        row = self._row(key)
        row[0] += 1
        row[1] += ok
        row[4] += mtls
        row[5][latency] += 1
        return row

    def attempted(self, key: tuple, ok: bool) -> None:
        row = self._row(key)
        row[2] += 1
        row[3] += ok

    def drain(self) -> list[dict]:
        """Everything counted since the last drain, as the wire sends it; the counts start again at zero."""
        counts, self.counts = self.counts, {}
        return [{"key": list(key), "requests": r[0], "ok": r[1], "attempts": r[2], "attempts_ok": r[3],
                 "mtls": r[4], "latency": sorted(r[5].items())} for key, r in counts.items()]
