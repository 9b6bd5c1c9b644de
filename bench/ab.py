"""`python -m bench.ab`: two checkouts of minimesh side by side in one run — did a change pay?

Each configuration runs twice at once: `base-<name>` with the minimesh package
from `--base` (a directory holding a `minimesh/` package, e.g. made with
`git archive <commit> minimesh | tar -x -C /tmp/base`), and `<name>` with this
checkout. Closed-loop rounds alternate between them, so a busy machine slows
both alike; printed per configuration: the throughput ratio (this ÷ base) of
each round and its median, each sidecar's CPU microseconds per request
(in all, then user and system apart; medians of the rounds), and each
sidecar's peak RSS (VmHWM) at the end of the run.

    python -m bench.ab --base /tmp/base --only minimesh,minimesh-no-telemetry --rounds 8
    python -m bench.ab --base /tmp/base --rate 200 --rounds 10   # latency and CPU at 200 req/s, not flat out

With `--rate`, each round is an open-loop phase at that rate instead (the
full bench's latency phase, measure.open_loop), the app alone (`direct`)
measured in the same rotation: printed are the medians of the rounds' p50
and p99, added over direct, and each sidecar's CPU per request at that rate
(idle work included: timers, heartbeats, telemetry batches).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
from pathlib import Path

from bench import configs
from bench.__main__ import RESULTS, split_cores
from bench.measure import Pinned, Settings, closed_loop, open_loop
from bench.procstat import cpu_split_snapshot, peak_rss_mb
from bench.topology import SERVICE, Processes, Target, running, start_upstream


class BaseProcesses(Processes):
    """Starts minimesh from the `base` directory instead of this checkout."""

    def __init__(self, logs: Path, cores: set[int], base: str):
        super().__init__(logs, cores)
        self.base = base

    def spawn(self, name, cmd, env=None, stdout=None, cores=None):
        if cmd[0].endswith("/minimesh"):  # the console script imports this checkout: run the module instead
            # -P: no working directory (this checkout) ahead of PYTHONPATH on sys.path.
            cmd = [sys.executable, "-P", "-m", "minimesh.cli", *cmd[1:]]
        return super().spawn(name, cmd, {**(env or {}), "PYTHONPATH": self.base}, stdout, cores)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab")
    p.add_argument("--base", required=True, help="a directory with the minimesh package to compare against")
    p.add_argument("--only", default="minimesh", help="comma-separated configuration names")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0, help="per closed-loop round")
    p.add_argument("--rate", type=float, help="open loop at this many requests/s instead of a closed loop")
    p.add_argument("--open-seconds", type=float, default=3.0, help="per open-loop round (with --rate)")
    args = p.parse_args(argv)
    plan = {c.name: c for c, why in configs.plan() if not why}
    names = args.only.split(",")
    client, server = split_cores()
    logs = RESULTS / "logs-ab"
    results: dict[str, list[dict]] = {}
    with contextlib.ExitStack() as stack:
        upstream = Processes(logs, server)
        stack.callback(upstream.stop_all)
        app_port = start_upstream(upstream)
        targets = {}
        for name in names:
            base = dataclasses.replace(plan[name], name="base-" + name)
            targets[base.name] = stack.enter_context(running(base, app_port, BaseProcesses(logs, server, args.base)))
            targets[name] = stack.enter_context(running(plan[name], app_port, Processes(logs, server)))
        settings = Settings(connections=32, rate=args.rate or 200.0, open_s=args.open_seconds)
        for target in targets.values():
            closed_loop(target, settings, Pinned(client), 1)  # warm
        if args.rate:
            targets["direct"] = Target(app_port, SERVICE)
        order = list(targets)
        for r in range(args.rounds):
            for name in order[r % len(order):] + order[:r % len(order)]:
                target = targets[name]
                before = cpu_split_snapshot(target.proxies)
                if args.rate:
                    out = open_loop(target, settings, Pinned(client))
                    out.pop("latencies_ms", None)
                    out["requests"], out["rps"] = out["completed"], out["completed"] / settings.open_s
                else:
                    out = closed_loop(target, settings, Pinned(client), args.seconds)
                after = cpu_split_snapshot(target.proxies)
                n = max(1, out["requests"])
                per_request = {}
                for role in before:
                    user, system = (1e6 * (a - b) / n for a, b in zip(after[role], before[role]))
                    per_request.update({role: user + system, role + "_user": user, role + "_sys": system})
                results.setdefault(name, []).append({"rps": out["rps"], "p50": out.get("p50_ms"),
                                                     "p99": out.get("p99_ms"), **per_request})
        peaks = {name: {role: peak_rss_mb(pid) for role, pid in target.proxies.items()}
                 for name, target in targets.items()}  # VmHWM, while the processes still run
    if args.rate:
        return at_rate(names, results, args.rate)
    for name in names:
        new, old = results[name], results["base-" + name]
        ratios = [n["rps"] / o["rps"] for n, o in zip(new, old) if o["rps"]]
        med = lambda rows, key: statistics.median(row[key] for row in rows)  # noqa: E731
        print(f"{name}: throughput this ÷ base {statistics.median(ratios):.2f} (rounds "
              f"{', '.join(f'{x:.2f}' for x in ratios)}); CPU µs per request: outbound "
              f"{med(old, 'outbound'):.0f} → {med(new, 'outbound'):.0f}, inbound "
              f"{med(old, 'inbound'):.0f} → {med(new, 'inbound'):.0f}; peak RSS MB outbound "
              f"{peaks['base-' + name]['outbound']:.1f} → {peaks[name]['outbound']:.1f}, inbound "
              f"{peaks['base-' + name]['inbound']:.1f} → {peaks[name]['inbound']:.1f}")
        for role in ("outbound", "inbound"):
            print(f"  {role} user + system µs per request: base {med(old, role + '_user'):.0f} + "
                  f"{med(old, role + '_sys'):.0f}, this {med(new, role + '_user'):.0f} + {med(new, role + '_sys'):.0f}")
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


def at_rate(names: list[str], results: dict[str, list[dict]], rate: float) -> int:
    med = lambda rows, key: statistics.median(row[key] for row in rows)  # noqa: E731
    direct = results["direct"]
    print(f"direct (the app alone) at {rate:g} req/s: p50 {med(direct, 'p50'):.3f} ms, p99 {med(direct, 'p99'):.3f} ms")
    for name in names:
        new, old = results[name], results["base-" + name]
        # Paired by round: round i of each ran back to back, in the same weather.
        added = lambda rows, key: statistics.median(row[key] - d[key] for row, d in zip(rows, direct))  # noqa: E731
        print(f"{name} at {rate:g} req/s: p50 {med(old, 'p50'):.3f} → {med(new, 'p50'):.3f} ms "
              f"(added over direct {added(old, 'p50'):+.3f} → {added(new, 'p50'):+.3f}); p99 {med(old, 'p99'):.3f} → "
              f"{med(new, 'p99'):.3f} ms (added {added(old, 'p99'):+.3f} → {added(new, 'p99'):+.3f}); "
              f"p50 this ÷ base by round {statistics.median(n['p50'] / o['p50'] for n, o in zip(new, old)):.2f}")
        for role in ("outbound", "inbound"):
            print(f"  {role} CPU µs per request at {rate:g} req/s (user + system): base {med(old, role):.0f} "
                  f"({med(old, role + '_user'):.0f} + {med(old, role + '_sys'):.0f}), this {med(new, role):.0f} "
                  f"({med(new, role + '_user'):.0f} + {med(new, role + '_sys'):.0f})")
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
