"""Measuring the configurations in interleaved rounds, so a noisy machine hurts them all alike.

On a shared 2-core box a neighbour's test run can stall everything for tens
of milliseconds. Measured one after another, whichever configuration was
unlucky looks slow. So every configuration runs at the same time (idle
proxies cost next to nothing), and each phase is cut into rounds that go
round-robin across them: direct, haproxy, minimesh, direct, haproxy, ... A
stall lands in one round of one configuration, and the headline figure — the
median over rounds — shrugs it off. The pooled percentiles over every
sample of every round are kept beside it, for the reader who wants the tail
with the stalls in.

The fixed-rate phase runs first, on a warm but unhurried proxy; the closed
loop last, since running flat out grows buffers that would flatter the
latency run. CPU is read from /proc around every round, so "CPU seconds per
1,000 requests" comes twice: at 200 rps (ordinary service, heartbeats and
all) and flat out (per-request work only). Peak RSS is read at the end.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field

from bench import procstat, wrk
from bench.loadgen import percentile
from bench.topology import Target


@dataclass(frozen=True)
class Settings:
    rate: float = 200.0          # requests/s in the open-loop phase
    rounds: int = 5              # each phase is cut into this many rounds per configuration
    open_s: float = 3.0          # per round: 600 samples at 200 rps, 3,000 in all
    closed_s: float = 2.0        # per round (wrk counts whole seconds)
    connections: int = 32        # closed-loop concurrency
    warmup_s: float = 1.0
    loadgen: str = "auto"        # closed-loop tool: auto (wrk if installed) | wrk | python


class Pinned:
    """preexec_fn for the load generator's processes: run only on the client cores."""

    def __init__(self, cores: set[int]):
        self.cores = cores

    def __call__(self) -> None:
        os.sched_setaffinity(0, self.cores)


def loadgen(args: list[str], pin: Pinned, timeout: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.loadgen", *args], capture_output=True, text=True,
                         timeout=timeout, preexec_fn=pin)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def closed_loop(target: Target, s: Settings, pin: Pinned, duration: float) -> dict:
    if s.loadgen == "wrk" or (s.loadgen == "auto" and wrk.available()):
        return wrk.run(target.port, target.host_header, s.connections, duration, len(pin.cores), pin)
    return loadgen(["closed", "--port", str(target.port), "--host-header", target.host_header,
                    "--connections", str(s.connections), "--duration", str(duration)], pin, duration + 60)


def open_loop(target: Target, s: Settings, pin: Pinned) -> dict:
    return loadgen(["open", "--port", str(target.port), "--host-header", target.host_header, "--raw",
                    "--rate", str(s.rate), "--duration", str(s.open_s)], pin, s.open_s + 60)


@dataclass
class Tally:
    """What one configuration accumulated over its rounds."""
    target: Target
    open_rounds: list[dict] = field(default_factory=list)
    closed_rounds: list[dict] = field(default_factory=list)
    cpu_open: dict = field(default_factory=dict)    # role -> CPU seconds during the open-loop rounds
    cpu_closed: dict = field(default_factory=dict)

    def timed(self, phase: dict, run) -> dict:
        watched = {**self.target.proxies, **self.target.helpers}
        before = procstat.cpu_snapshot(watched)
        result = run()
        after = procstat.cpu_snapshot(watched)
        for role in before:
            phase[role] = phase.get(role, 0.0) + after[role] - before[role]
        return result


def run_rounds(tallies: dict[str, Tally], s: Settings, pin: Pinned, say=lambda msg: None) -> None:
    for name, tally in tallies.items():
        closed_loop(tally.target, s, pin, s.warmup_s)  # connections opened, code paths warm
    names = list(tallies)
    for phase in ("open", "closed"):
        for r in range(s.rounds):
            order = names[r % len(names):] + names[:r % len(names)]  # who goes first rotates too
            say(f"{phase}-loop round {r + 1}/{s.rounds}")
            for name in order:
                t = tallies[name]
                if phase == "open":
                    t.open_rounds.append(t.timed(t.cpu_open, lambda: open_loop(t.target, s, pin)))
                else:
                    t.closed_rounds.append(t.timed(t.cpu_closed, lambda: closed_loop(t.target, s, pin, s.closed_s)))


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def _merge_errors(rounds: list[dict]) -> dict:
    total: dict[str, int] = {}
    for r in rounds:
        for k, v in r["errors"].items():
            total[k] = total.get(k, 0) + v
    return total


def summarize(tally: Tally, s: Settings) -> dict:
    o, c = tally.open_rounds, tally.closed_rounds
    pooled = sorted(v for r in o for v in r.pop("latencies_ms"))
    completed = sum(r["completed"] for r in o)
    requests = sum(r["requests"] for r in c)
    latency = {
        "rate": s.rate, "rounds": len(o), "sent": sum(r["sent"] for r in o), "completed": completed,
        "errors": _merge_errors(o), "connections": max(r["connections"] for r in o),
        # Headline: the median over rounds of each round's percentile.
        "p50_ms": _median(r["p50_ms"] for r in o), "p90_ms": _median(r["p90_ms"] for r in o),
        "p99_ms": _median(r["p99_ms"] for r in o),
        # Every sample of every round together, stalls and all.
        "pooled_p50_ms": percentile(pooled, 50), "pooled_p99_ms": percentile(pooled, 99),
        "max_ms": pooled[-1] if pooled else None,
        "late_sends_ms_p99": _median(r["late_sends_ms_p99"] for r in o),
        "per_round_p99_ms": [r["p99_ms"] for r in o],
    }
    throughput = {
        "tool": c[0]["tool"], "connections": s.connections, "rounds": len(c), "requests": requests,
        "errors": _merge_errors(c), "rps": _median(r["rps"] for r in c),
        "per_round_rps": [r["rps"] for r in c],
    }
    per_1k = lambda cpu, n: {role: round(v / n * 1000, 4) if n else None for role, v in cpu.items()}  # noqa: E731
    at_rate, flat = per_1k(tally.cpu_open, completed), per_1k(tally.cpu_closed, requests)
    proxies = [{"role": role, "pid": pid, "cpu_s_per_1k_at_rate": at_rate[role],
                "cpu_s_per_1k_flat_out": flat[role], "peak_rss_mb": round(procstat.peak_rss_mb(pid), 1)}
               for role, pid in tally.target.proxies.items()]
    # Not a sidecar, but on the same cores: the control plane receives the telemetry the sidecars send.
    helpers = [{"role": role, "pid": pid, "cpu_s_per_1k_at_rate": at_rate[role],
                "cpu_s_per_1k_flat_out": flat[role], "peak_rss_mb": round(procstat.peak_rss_mb(pid), 1)}
               for role, pid in tally.target.helpers.items()]
    return {"latency": latency, "throughput": throughput, "proxies": proxies, "helpers": helpers}
