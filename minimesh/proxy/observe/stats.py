"""Counters a sidecar keeps about the requests it saw, for its admin `/stats`.

Keyed the way Istio's `istio_requests_total` is labelled — who reported it,
which service, which status — so a learner can compare `/stats` across
sidecars and see retries as attempts beyond the requests.
"""

from __future__ import annotations

from collections import Counter, defaultdict


class Stats:
    def __init__(self):
        self.requests: Counter = Counter()  # (direction, service, status, flags) -> count
        self.attempts: Counter = Counter()  # (direction, service) -> upstream attempts made
        self.by_endpoint: Counter = Counter()  # (service, instance) -> answered attempts
        self.latency_ms: dict = defaultdict(float)  # (direction, service) -> total ms

    def record(self, journey, status: int, duration_ms: float) -> None:
        service = journey.service or "-"
        flags = ",".join(journey.flags) or "-"
        self.requests[(journey.direction, service, status, flags)] += 1
        self.attempts[(journey.direction, service)] += len(journey.attempts)
        self.latency_ms[(journey.direction, service)] += duration_ms
        if journey.endpoint_instance:
            self.by_endpoint[(service, journey.endpoint_instance)] += 1

    def as_json(self) -> dict:
        return {
            "requests": [{"direction": d, "service": s, "status": st, "flags": f, "count": n}
                         for (d, s, st, f), n in sorted(self.requests.items(), key=str)],
            "attempts": [{"direction": d, "service": s, "count": n}
                         for (d, s), n in sorted(self.attempts.items())],
            "endpoints": [{"service": s, "instance": i, "count": n}
                          for (s, i), n in sorted(self.by_endpoint.items())],
        }
