"""Rollouts: has every proxy taken config version N yet, and how long did it take?

Theory of operation. An apply bumps the config version (say to 7) and wakes
the watches; each proxy receives a snapshot built from config 7, parses it and
answers ACK (it now runs it) or NACK (it refused it and keeps its last good
one). A rollout of version 7 is *done* when every registered proxy has ACKed
a snapshot of config 7 or newer — or *failed* as soon as one NACKed it,
because that proxy will not take it until the config changes again.

The snapshot version a proxy ACKs is opaque to everyone but the control plane
(snapshot.py writes it); this book turns it into the config version it was
built from, so `/v1/status` can say "pricing-v2-0 runs config 7" and a client
never parses the string.

How long it took is Istio's `pilot_proxy_convergence_time`: from the moment
version 7 was committed to the ACK that completed the set. The book records
when each version was committed and when each proxy first ACKed its current
config version, so the answer is exact even when a client asks after the
fact (which is the usual case: ten proxies ACK in a few milliseconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

KEEP_VERSIONS = 64  # commit times kept; older versions report no convergence time


@dataclass(frozen=True)
class Take:
    """What one proxy has done with config so far."""

    acked: int | None = None      # newest config version it ACKed
    acked_at: float = 0.0         # when it first ACKed that config version
    nacked: int | None = None     # config version it refused (cleared by a later ACK)
    nack_error: str | None = None


def take_after(take: Take, config_version: int, error: str | None, now: float) -> Take:
    """The next Take after an ACK (error None) or a NACK of a snapshot built from `config_version`."""
    if error is not None:
        return Take(take.acked, take.acked_at, config_version, error)
    # A registry change makes a new snapshot of the same config: the proxy had
    # the config already, so the first ACK's time stands.
    acked_at = take.acked_at if take.acked == config_version else now
    still_refused = take.nacked is not None and take.nacked > config_version
    return Take(config_version, acked_at, take.nacked if still_refused else None,
                take.nack_error if still_refused else None)


@dataclass(frozen=True)
class ProxyProgress:
    node: str
    state: str                     # "acked" | "nacked" | "pending"
    acked_config_version: int | None
    nack_error: str | None = None

    def to_json(self) -> dict:
        return {"node": self.node, "state": self.state, "acked_config_version": self.acked_config_version,
                "nack_error": self.nack_error}


@dataclass(frozen=True)
class Rollout:
    config_version: int
    proxies: tuple[ProxyProgress, ...]
    convergence_s: float | None    # None until converged, or when the commit time is unknown

    @property
    def converged(self) -> bool:
        return all(p.state == "acked" for p in self.proxies)

    @property
    def failed(self) -> bool:
        return any(p.state == "nacked" for p in self.proxies)

    @property
    def done(self) -> bool:
        return self.converged or self.failed

    def to_json(self) -> dict:
        return {"config_version": self.config_version, "converged": self.converged, "failed": self.failed,
                "convergence_s": self.convergence_s, "proxies": [p.to_json() for p in self.proxies]}


def progress(version: int, nodes: list[str], takes: dict[str, Take], committed_at: float | None) -> Rollout:
    """Pure: where the rollout of config `version` stands among `nodes`."""
    proxies = []
    for node in sorted(nodes):
        take = takes.get(node, Take())
        if take.acked is not None and take.acked >= version:
            state = "acked"
        elif take.nacked is not None and take.nacked >= version:
            state = "nacked"
        else:
            state = "pending"
        proxies.append(ProxyProgress(node, state, take.acked, take.nack_error if state == "nacked" else None))
    convergence = None
    if committed_at is not None and all(p.state == "acked" for p in proxies):
        last = max((takes[n].acked_at for n in nodes), default=committed_at)
        convergence = round(max(0.0, last - committed_at), 6)
    return Rollout(version, tuple(proxies), convergence)


class RolloutBook:
    """Commit times per config version, and each proxy's Take; time from an injected clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.committed_at: dict[int, float] = {}
        self.takes: dict[str, Take] = {}

    def committed(self, version: int) -> None:
        self.committed_at[version] = self.clock()
        for old in sorted(self.committed_at)[:-KEEP_VERSIONS]:
            del self.committed_at[old]

    def record(self, node: str, config_version: int | None, error: str | None) -> None:
        if config_version is None:
            return  # not a version this control plane wrote; nothing to learn from it
        self.takes[node] = take_after(self.takes.get(node, Take()), config_version, error, self.clock())

    def acked_config_version(self, node: str) -> int | None:
        return self.takes.get(node, Take()).acked

    def forget(self, node: str) -> None:
        self.takes.pop(node, None)

    def progress(self, version: int, nodes: list[str]) -> Rollout:
        return progress(version, nodes, self.takes, self.committed_at.get(version))
