"""`python -m bench`: run every configuration, print the table, write results/latest.json.

    python -m bench                  # the full run (`make bench`), ~3-4 minutes
    python -m bench --quick          # seconds: a smoke test of the harness, numbers meaningless
    python -m bench --only direct,minimesh --out /tmp/x.json
    python -m bench --only minimesh,minimesh-authz --rounds 15   # what the policy layer costs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import configs, report, wrk
from bench.measure import Pinned, Settings, Tally, run_rounds, summarize
from bench.topology import REPO, Processes, running, start_upstream

RESULTS = Path(__file__).resolve().parent / "results"
QUICK = Settings(rate=50, rounds=2, open_s=0.5, closed_s=0.5, connections=8, warmup_s=0.2, loadgen="python")


def split_cores() -> tuple[set[int], set[int]]:
    """(client cores, server cores): the first core for the load generator, the rest for servers."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return set(cores), set(cores)
    return {cores[0]}, set(cores[1:])


def _version(cmd: list[str]) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def machine(client: set[int], server: set[int], loadavg_at_start: list[float]) -> dict:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return {
        "cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
        "python": platform.python_version(), "loadavg_at_start": loadavg_at_start,
        "client_cores": sorted(client), "server_cores": sorted(server),
        "haproxy": _version(["haproxy", "-v"]), "wrk": _version(["wrk", "-v"]),
        "minimesh_commit": commit.stdout.strip() or None,
    }


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description="minimesh's performance harness")
    p.add_argument("--quick", action="store_true", help="a few seconds per configuration; for tests")
    p.add_argument("--only", help="comma-separated configuration names")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], help="closed-loop tool (default: wrk if installed)")
    p.add_argument("--no-haproxy", action="store_true", help="leave out the HAProxy pair")
    p.add_argument("--rounds", type=int, help="rounds per phase (default 5): more for a small difference on a busy box")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else Settings()
    if args.loadgen:
        settings = Settings(**{**settings.__dict__, "loadgen": args.loadgen})
    if args.rounds:
        settings = Settings(**{**settings.__dict__, "rounds": args.rounds})
    client, server = split_cores()
    pin = Pinned(client)
    logs = args.out.parent / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    started = time.time()
    loadavg_at_start = [round(v, 2) for v in os.getloadavg()]
    plan = configs.plan(include_haproxy=not args.no_haproxy)
    if args.only:
        wanted = set(args.only.split(","))
        plan = [(c, why) for c, why in plan if c.name in wanted]

    rows = []
    say = lambda msg: print(f"-- {msg}", file=sys.stderr, flush=True)  # noqa: E731
    with contextlib.ExitStack() as running_now:
        upstream = Processes(logs, server)
        running_now.callback(upstream.stop_all)
        app_port = start_upstream(upstream)
        tallies = {}
        for config, skipped in plan:
            rows.append({"name": config.name, "kind": config.kind, "description": config.description,
                         "mtls": config.mtls, "telemetry": config.telemetry, "measured": False, "skipped": skipped})
            if skipped:
                say(f"{config.name}: not measured ({skipped})")
                continue
            say(f"{config.name}: starting {config.description}")
            target = running_now.enter_context(running(config, app_port, Processes(logs, server)))
            tallies[config.name] = Tally(target)
        run_rounds(tallies, settings, pin, say)
        for row in rows:
            if row["name"] in tallies:
                row.update(summarize(tallies[row["name"]], settings), measured=True)

    report.derive(rows)
    verdicts = report.judge(rows)
    result = {
        "schema": 1, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1), "quick": args.quick,
        "machine": {**machine(client, server, loadavg_at_start),
                    "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]},
        "settings": {**settings.__dict__,
                     "closed_loop_tool": "wrk" if settings.loadgen == "wrk" or
                     (settings.loadgen == "auto" and wrk.available()) else "bench.loadgen (python)"},
        "configurations": rows, "goals": verdicts,
        "not_measured": [{"configuration": r["name"], "why": r["skipped"]} for r in rows if not r["measured"]],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(report.table(rows, verdicts))
    for line in report.noise_warnings(result):
        print(line)
    print(f"\nwrote {args.out} in {result['duration_s']:.0f} s (logs: {logs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
