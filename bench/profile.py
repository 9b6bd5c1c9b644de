"""`python -m bench.profile`: where a sidecar's time goes, under load, with py-spy.

Starts one configuration (default: the plaintext sidecar pair), drives it
flat out with the closed-loop client, and samples both sidecars with py-spy
(`pip install py-spy`; it reads another process's Python stacks from outside,
so the sidecar runs unmodified). Prints, per sidecar, the functions with the
most samples *inside* them (self) and *under* them (inclusive), and keeps the
collapsed stacks in bench/results/profile-<config>-<role>.txt — the format
flamegraph.pl and speedscope read.

    python -m bench.profile --config minimesh --seconds 10
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from bench import configs
from bench.__main__ import RESULTS, split_cores
from bench.measure import Pinned, Settings, closed_loop
from bench.topology import Processes, running, start_upstream


def collapse(path: Path) -> tuple[collections.Counter, collections.Counter, int]:
    """(self samples, inclusive samples, total) per function from py-spy's raw (collapsed) output."""
    own, under, total = collections.Counter(), collections.Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            under[frame] += n
    return own, under, total


def report(role: str, path: Path, top: int) -> str:
    own, under, total = collapse(path)
    if not total:
        return f"{role}: no samples"
    lines = [f"== {role} sidecar: {total} samples ({path})", "  self %   function"]
    lines += [f"  {100 * n / total:6.1f}   {fn}" for fn, n in own.most_common(top)]
    lines += ["  incl %   function (minimesh and aiohttp frames)"]
    # Leave out the frames every sample passes through (click, the runner, main).
    plumbing = ("(runners.py)", "(core.py)", "(cli.py)", "(logs.py)", "(<frozen runpy>)", "(minimesh)")
    ours = [(fn, n) for fn, n in under.most_common()
            if not fn.endswith(plumbing) and not fn.startswith(("<module>", "run_sidecar", "main "))]
    lines += [f"  {100 * n / total:6.1f}   {fn}" for fn, n in ours[:top]]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("--config", default="minimesh", help="a configuration name from the bench (default: minimesh)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--native", action="store_true", help="sample C frames too (uvloop, the garbage collector, syscalls)")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 1
    wanted = {c.name: (c, why) for c, why in configs.plan()}
    config, why = wanted[args.config]
    if why:
        print(f"{args.config} cannot run here: {why}", file=sys.stderr)
        return 1
    client, server = split_cores()
    logs = RESULTS / "logs-profile"
    upstream = Processes(logs, server)
    try:
        app_port = start_upstream(upstream)
        with running(config, app_port, Processes(logs, server)) as target:
            settings = Settings(connections=32)
            closed_loop(target, settings, Pinned(client), 1)  # warm
            outputs = {role: RESULTS / f"profile-{config.name}-{role}.txt" for role in target.proxies}
            spies = [subprocess.Popen([spy, "record", "--format", "raw", "--rate", "250",
                                       "-d", str(int(args.seconds)), "-o", str(outputs[role]), "-p", str(pid),
                                       *(["--native"] if args.native else ["--nonblocking"])],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for role, pid in target.proxies.items()]
            load = threading.Thread(target=closed_loop, args=(target, settings, Pinned(client), args.seconds + 1))
            load.start()
            for s in spies:
                s.wait()
            load.join()
    finally:
        upstream.stop_all()
    for role, path in outputs.items():
        print(report(role, path, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
