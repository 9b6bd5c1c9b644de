"""Pure helpers for the data workers and the views: sampling, history, health, formatting.

When the tap stream is faster than a terminal can usefully draw (hundreds of
lines a second), the tap view shows an even sample of each batch — every
k-th line — and says so ("sampling 1 in k of N/s"), instead of falling
behind or freezing the UI. The rate comes from `RateMeter`, counted over the
last few seconds of batches.
"""

from __future__ import annotations

import math
from collections import deque

BLOCKS = "▁▂▃▄▅▆▇█"


def sample(items: list, budget: int) -> tuple[list, int]:
    """At most `budget` items, evenly spread and keeping the newest; and k (1 = nothing dropped)."""
    if budget <= 0 or len(items) <= budget:
        return list(items), 1
    k = math.ceil(len(items) / budget)
    # Count back from the newest so the last line shown is the latest one.
    return items[len(items) - 1::-k][::-1], k


class RateMeter:
    """Items per second over a sliding span of seconds; time comes in as an argument."""

    def __init__(self, span_s: float = 3.0):
        self.span_s = span_s
        self.marks: deque[tuple[float, int]] = deque()

    def add(self, now: float, count: int) -> None:
        self.marks.append((now, count))
        while self.marks and self.marks[0][0] < now - self.span_s:
            self.marks.popleft()

    def rate(self, now: float) -> float:
        recent = [c for t, c in self.marks if t >= now - self.span_s]
        return sum(recent) / self.span_s if recent else 0.0


class History:
    """The last `size` samples of a number per key (an RPS sparkline per service version)."""

    def __init__(self, size: int = 30):
        self.size = size
        self.series: dict[tuple, deque] = {}

    def add(self, key: tuple, value: float) -> None:
        self.series.setdefault(key, deque(maxlen=self.size)).append(value)

    def get(self, key: tuple) -> list[float]:
        return list(self.series.get(key, ()))


def spark(values: list[float], width: int = 12) -> str:
    """A sparkline of the last `width` values, scaled to their own maximum."""
    values = values[-width:]
    top = max(values, default=0)
    if top <= 0:
        return BLOCKS[0] * len(values)
    return "".join(BLOCKS[min(len(BLOCKS) - 1, int(v / top * (len(BLOCKS) - 1) + 0.5))] for v in values)


def health(success: float | None) -> str:
    """A row's colour class: Linkerd's habit of green above 99 %, amber above 90 %, red below."""
    if success is None:
        return "idle"
    if success >= 0.99:
        return "good"
    if success >= 0.90:
        return "warn"
    return "bad"


def status_class(status) -> str:
    if not isinstance(status, int) or status >= 500 or status <= 0:
        return "bad"
    return "warn" if status >= 400 else "good"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def millis(value: float | None) -> str:
    return "-" if value is None else (f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms")


def rps(value: float) -> str:
    return f"{value:.1f}"


def expiry(not_after: float | None, now: float) -> str:
    """Certificate time to expiry, as a person reads it: 23h59m, 4m10s, 9s, expired."""
    if not_after is None:
        return "-"
    left = int(not_after - now)
    if left <= 0:
        return "expired"
    if left >= 3600:
        return f"{left // 3600}h{left % 3600 // 60:02d}m"
    if left >= 60:
        return f"{left // 60}m{left % 60:02d}s"
    return f"{left}s"


def padlock(mtls_share: float | None) -> str:
    """🔒 all mutual TLS, ◐ some, · none (or no traffic)."""
    if not mtls_share:
        return "·"
    return "🔒" if mtls_share >= 0.999 else "◐"


def parse_filter(text: str) -> tuple[str | None, str | None]:
    """'/payments 5xx' → (service, status class). A word like 5xx, 503 or 2xx is a status; the rest a service."""
    service = status = None
    for word in text.split():
        if len(word) == 3 and word[0].isdigit() and all(c.isdigit() or c in "xX" for c in word[1:]):
            status = word.lower()
        else:
            service = word
    return service, status
