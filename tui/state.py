"""What the app holds between refreshes, and how each worker's delivery updates it.

The workers (app.py) fetch in threads and hand a `MeshPoll` or a tap batch
to the UI thread, which calls `take_mesh` / `take_tap` and redraws. Nothing
here does I/O; time comes in as an argument.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tui.feed import History, RateMeter, sample
from tui.model import Instance, MeshStatus, Stat, TapEvent, Trace

TAP_ROWS = 200  # lines kept in the tap view
TAP_DRAW_BUDGET = 40  # lines drawn per batch; more than that and the view samples


@dataclass(frozen=True)
class MeshPoll:
    """One round of the mesh worker: rollups, the short-window rollups for sparklines, sync state."""

    stat: Stat
    recent: Stat | None = None  # a short window, for the RPS sparkline
    status: MeshStatus | None = None
    config: tuple[int, list] | None = None
    instances: tuple[Instance, ...] | None = None


@dataclass
class MeshState:
    stat: Stat = field(default_factory=lambda: Stat(0))
    status: MeshStatus | None = None
    config_version: int = 0
    resources: list = field(default_factory=list)
    instances: tuple[Instance, ...] = ()
    history: History = field(default_factory=lambda: History(30))
    tap: deque = field(default_factory=lambda: deque(maxlen=TAP_ROWS))
    tap_meter: RateMeter = field(default_factory=RateMeter)
    sampling: int = 1  # 1: every line drawn; k: 1 in k
    traces: dict = field(default_factory=dict)  # trace_id -> Trace (fetched on demand)
    error: str | None = None

    def take_mesh(self, poll: MeshPoll) -> None:
        self.stat = poll.stat
        if poll.status is not None:
            self.status = poll.status
            self.config_version = poll.status.config_version
        if poll.config is not None:
            _, self.resources = poll.config
        if poll.instances is not None:
            self.instances = poll.instances
        if poll.recent is not None:  # one sparkline sample per short-window poll
            recent = {(w.service, w.version): w.rps for w in poll.recent.workloads}
            for key in set(recent) | set(self.history.series):
                self.history.add(key, recent.get(key, 0.0))
        self.error = None

    def take_tap(self, events: list[TapEvent], now: float) -> list[TapEvent]:
        """Keep a sample of the batch, in the order the requests ended; return what was added.

        The hub hands lines over as sidecars report them, a batch per sidecar a
        few times a second, so a batch can hold requests that ended before the
        last line shown: those go in their place, not at the bottom.
        """
        self.tap_meter.add(now, len(events))
        shown, self.sampling = sample([e for e in events if e.kind == "request"], TAP_DRAW_BUDGET)
        shown += [e for e in events if e.kind != "request"]  # an ejection or return is never sampled away
        for event in sorted(shown, key=lambda e: e.ts):
            if not self.tap or self.tap[-1].ts <= event.ts:
                self.tap.append(event)  # the usual case: the stream scrolls on
                continue
            at = len(self.tap)
            while at > 0 and self.tap[at - 1].ts > event.ts:
                at -= 1
            if len(self.tap) == self.tap.maxlen:
                if at == 0:
                    continue  # older than everything kept: it would scroll off at once
                self.tap.popleft()  # make room: the oldest line scrolls off
                at -= 1
            self.tap.insert(at, event)
        return shown

    def keep_trace(self, trace: Trace) -> None:
        if len(self.traces) > 100:
            self.traces.pop(next(iter(self.traces)))
        self.traces[trace.trace_id] = trace

    def services(self) -> list[tuple[str, str]]:
        """Every (service, version) with traffic or a sidecar, sorted."""
        keys = {(w.service, w.version) for w in self.stat.workloads}
        if self.status is not None:
            keys |= {(p.service, p.version) for p in self.status.proxies if p.kind == "sidecar"}
        return sorted(keys)
