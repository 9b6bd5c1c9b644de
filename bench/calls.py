"""`python -m bench.calls`: how many Python calls a request costs each sidecar, and in which functions.

py-spy (bench.profile) samples; this counts. Both sidecars of one
configuration run under cProfile, switched on by SIGUSR1 only for the
measured closed-loop seconds and written out by SIGUSR2 (start-up and
warm-up are not in it), then it prints per sidecar the Python calls per
request and the functions with the most time of their own, per request.

The profiler's clock is the process's CPU time, not the wall clock: every
server process shares one core here, so a wall clock would charge a sidecar
for the app or the other sidecar running while it sat in a `send`. Reading
that clock is a system call per event, so the microseconds printed are
several times the real ones, small functions most: read shares and call
counts, not absolute times. uvloop's and httptools' Cython methods are not
seen by it: the `send`s and llhttp's parsing count in their Python callers.

    python -m bench.calls --config minimesh --seconds 6
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pstats
import signal
import sys
import time
from pathlib import Path

from bench import configs
from bench.__main__ import RESULTS, split_cores
from bench.measure import Pinned, Settings, closed_loop
from bench.topology import Processes, running, start_upstream


def profiled_sidecar(out: str, argv: list[str]) -> None:
    """Run `minimesh <argv>` with a profiler that SIGUSR1 starts and SIGUSR2 stops and writes to `out`."""
    import cProfile
    import runpy

    profiler = cProfile.Profile(time.process_time)  # CPU time: see the module's note

    def stop(*_):
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = ["minimesh", *argv]
    runpy.run_module("minimesh.cli", run_name="__main__")


class ProfiledProcesses(Processes):
    """Starts each sidecar under `profiled_sidecar`, its statistics going to `outputs[role]`."""

    def __init__(self, logs: Path, cores: set[int], outputs: dict[str, Path]):
        super().__init__(logs, cores)
        self.outputs = outputs

    def spawn(self, name, cmd, env=None, stdout=None, cores=None):
        role = name.rsplit("-", 1)[-1]
        if "sidecar" in cmd and role in self.outputs:
            minimesh_args = cmd[cmd.index("sidecar"):]
            cmd = [sys.executable, "-m", "bench.calls", "--as-sidecar", str(self.outputs[role]), *minimesh_args]
        return super().spawn(name, cmd, env, stdout, cores)


def report(role: str, path: Path, requests: int, top: int) -> str:
    stats = pstats.Stats(str(path)).stats
    busy = {key: row for key, row in stats.items() if row[1] >= requests / 2}  # called about once a request or more
    lines = [f"== {role} sidecar: {requests} requests, {sum(r[1] for r in stats.values()) / requests:.0f} "
             f"Python calls per request ({sum(r[1] for r in busy.values()) / requests:.0f} in functions called "
             f"about every request)", "  calls/req  own µs/req (cProfile's)   function"]
    for (file, line, name), (_, calls, own, _, _) in sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]:
        where = f"{Path(file).name}:{line} {name}" if file != "~" else name
        lines.append(f"  {calls / requests:9.2f}  {1e6 * own / requests:9.1f}              {where}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--as-sidecar"]:
        profiled_sidecar(argv[1], argv[2:])
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.calls")
    p.add_argument("--config", default="minimesh", help="a configuration name from the bench (default: minimesh)")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    wanted = {c.name: (c, why) for c, why in configs.plan()}
    config, why = wanted[args.config]
    if why or config.kind != "minimesh":
        print(f"{args.config} cannot be profiled here: {why or 'not a sidecar pair'}", file=sys.stderr)
        return 1
    client, server = split_cores()
    logs = RESULTS / "logs-calls"
    outputs = {role: RESULTS / f"calls-{config.name}-{role}.prof" for role in ("outbound", "inbound")}
    for path in outputs.values():
        path.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        upstream = Processes(logs, server)
        stack.callback(upstream.stop_all)
        app_port = start_upstream(upstream)
        target = stack.enter_context(running(config, app_port, ProfiledProcesses(logs, server, outputs)))
        settings = Settings(connections=32)
        closed_loop(target, settings, Pinned(client), 1)  # warm
        for pid in target.proxies.values():
            os.kill(pid, signal.SIGUSR1)
        requests = closed_loop(target, settings, Pinned(client), args.seconds)["requests"]
        for pid in target.proxies.values():
            os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not all(p.is_file() for p in outputs.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
    for role, path in outputs.items():
        print(report(role, path, max(1, requests), args.top) if path.is_file() else f"{role}: no profile written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
