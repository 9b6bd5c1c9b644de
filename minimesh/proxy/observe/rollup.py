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
from dataclasses import dataclass, field
from typing import Callable, Iterable

GROWTH = 1.04
FLOOR_MS = 0.01
_LOG_GROWTH = math.log(GROWTH)


def latency_bin(ms: float) -> int:
    return max(0, int(math.log(max(ms, FLOOR_MS) / FLOOR_MS) / _LOG_GROWTH))


def bin_value(index: int) -> float:
    """The middle of a bin, in ms (geometric)."""
    return FLOOR_MS * GROWTH ** (index + 0.5)


@dataclass(slots=True)
class Tally:
    """Counters for one key over some time; tallies add up (the sidecar's since its last send, the hub's per second)."""

    requests: int = 0
    ok: int = 0  # answered without a 5xx (and with an answer at all)
    attempts: int = 0  # upstream attempts (client side only)
    attempts_ok: int = 0
    mtls: int = 0
    latency: Counter = field(default_factory=Counter)

    def add(self, other: "Tally") -> None:
        self.requests += other.requests
        self.ok += other.ok
        self.attempts += other.attempts
        self.attempts_ok += other.attempts_ok
        self.mtls += other.mtls
        self.latency.update(other.latency)

    def percentile(self, p: float) -> float | None:
        total = sum(self.latency.values())
        if not total:
            return None
        rank = p * total
        seen = 0
        for index in sorted(self.latency):
            seen += self.latency[index]
            if seen >= rank:
                return bin_value(index)
        return bin_value(max(self.latency))


def is_success(status) -> bool:
    return isinstance(status, int) and 0 < status < 500


def count_request(tally_of: Callable[[tuple], Tally], service: str, version: str, inbound: bool, ok: bool,
                  latency: int, mtls: bool, dst_service: str | None = None, dst_version: str | None = None,
                  route: str | None = None, attempts: Iterable[tuple[bool, str | None]] = (),
                  denied_from: tuple[str, str | None] | None = None) -> None:
    """Count one request under its keys — the one rule both the sidecar and the hub use.

    `tally_of(key)` is the Tally to add to; `latency` is the request's bin;
    `attempts` is (ok, version of the endpoint tried) per upstream attempt;
    `denied_from` is (service, version) of the caller an AuthorizationPolicy
    denied here (403 RBAC): ("outside", None) at the gateway.
    """
    rows, denied = request_rows(tally_of, service, version, inbound, dst_service, dst_version, route, denied_from)
    add_request(rows, denied, ok, latency, mtls)
    for a_ok, a_version in attempts:
        add_attempt(rows, tally_of(attempts_key(dst_service, a_version)), a_ok)


# count_request in three steps, for a caller counting many requests at once (the sidecar's
# telemetry.count): the rows a kind of request is counted under are found once, then added to.

def request_rows(tally_of: Callable[[tuple], Tally], service: str, version: str, inbound: bool,
                 dst_service: str | None = None, dst_version: str | None = None, route: str | None = None,
                 denied_from: tuple[str, str | None] | None = None) -> tuple[tuple[Tally, ...], Tally | None]:
    """The tallies a request is counted under: (its rows, the denial's row or None)."""
    denied = tally_of(("denied", *denied_from, service, version)) if denied_from is not None else None
    if inbound:
        return (tally_of(("workload", service, version)),), denied
    return (tally_of(("edge", service, version, dst_service, dst_version)),
            tally_of(("route", dst_service, route or "default"))), denied


def attempts_key(dst_service: str | None, version: str | None) -> tuple:
    return ("attempts", dst_service, version)


def add_request(rows: tuple[Tally, ...], denied: Tally | None, ok: bool, latency: int, mtls: bool) -> None:
    if denied is not None:
        denied.requests += 1
        denied.mtls += mtls
        denied.latency[latency] += 1
    for row in rows:
        row.requests += 1
        row.ok += ok
        row.mtls += mtls
        row.latency[latency] += 1


def add_requests(rows: tuple[Tally, ...], denied: Tally | None, ok: bool, latencies: list[int], mtls: bool) -> None:
    """add_request for many requests alike but for their latency bins."""
    n = len(latencies)
    for row in (rows if denied is None else (denied, *rows)):
        row.requests += n
        row.mtls += mtls * n
        row.latency.update(latencies)
    for row in rows:
        row.ok += ok * n


def add_attempt(rows: tuple[Tally, ...], attempts_row: Tally, ok: bool, n: int = 1, n_ok: int | None = None) -> None:
    """Upstream attempts (one, or n of which n_ok ok): on the request's rows and its endpoint version's row."""
    n_ok = n * ok if n_ok is None else n_ok
    for row in (*rows, attempts_row):
        row.attempts += n
        row.attempts_ok += n_ok


class Tallies:
    """A Tally per key since the last drain: what the exporter sends the hub."""

    def __init__(self):
        self.counts: dict[tuple, Tally] = {}

    def tally(self, key: tuple) -> Tally:
        row = self.counts.get(key)
        if row is None:
            row = self.counts[key] = Tally()
        return row

    def drain(self) -> list[dict]:
        """Everything counted since the last drain, as the wire sends it; the counts start again at zero."""
        counts, self.counts = self.counts, {}
        return [{"key": list(key), "requests": t.requests, "ok": t.ok, "attempts": t.attempts,
                 "attempts_ok": t.attempts_ok, "mtls": t.mtls, "latency": sorted(t.latency.items())}
                for key, t in counts.items()]
