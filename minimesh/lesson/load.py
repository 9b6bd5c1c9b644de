"""`minimesh load LESSON`: a lesson's locustfile, headless, against the running stack's gateway.

What an instructor types once the room's stacks are up: the lesson's own
shoppers (lessons/NN-slug/locustfile.py) for a minute, 20 of them, with the
numbers saved as CSV under MINIMESH_HOME/load/ so they can be compared after
the next step. Locust's exit code is passed on: every locustfile gates on its
error ratio (LOCUST_MAX_ERROR_RATIO), so a script can tell "retries on"
from "retries off" by the exit code alone.

    minimesh load 02-retries                       # 20 users, 5/s, 1 minute
    minimesh load 02 -u 50 -t 30s -- --tags checkout   # anything after -- goes to locust
"""

from __future__ import annotations

import ast
import importlib.util
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from minimesh.errors import UserError
from minimesh.lesson.catalog import find_lesson
from minimesh.runner.state import read_state, resolve_home

CSV_FILES = ("stats", "failures", "exceptions", "stats_history")


DEFAULT_USERS = 20         # a small room's worth of shoppers; enough for concurrency to matter
DEFAULT_SPAWN_RATE = 5.0   # users started per second: all in within 4 s


@dataclass(frozen=True)
class LoadOptions:
    users: int | None = None          # None: DEFAULT_USERS, or the locustfile's own shape if it has one
    spawn_rate: float | None = None
    run_time: str = "1m"        # long enough for a stable error ratio, short enough to wait for
    csv_prefix: str | None = None
    locust_args: tuple[str, ...] = ()


def csv_prefix_for(home: Path, lesson: str, now: float) -> Path:
    """<home>/load/<lesson>-<local time>: one set of CSVs per run, never overwritten."""
    return home / "load" / f"{lesson}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"


def _shapes(source: str) -> list[ast.ClassDef]:
    return [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef) and any(
            (b.id if isinstance(b, ast.Name) else getattr(b, "attr", None)) == "LoadTestShape" for b in node.bases)]


def has_shape(source: str) -> bool:
    """True when the locustfile sets its own load curve (a LoadTestShape subclass)."""
    return bool(_shapes(source))


def shape_ignores_run_time(source: str) -> bool:
    """Headless locust never applies --run-time to a shape: a shape that does not read
    `parsed_options.run_time` itself runs its own length whatever -t says."""
    return any(not any(isinstance(n, ast.Attribute) and n.attr == "run_time" for n in ast.walk(shape))
               for shape in _shapes(source))


def locust_command(locustfile: Path, gateway_url: str, opts: LoadOptions, csv_prefix: Path,
                   shaped: bool = False) -> list[str]:
    """A lesson with a shape keeps its own curve unless users or spawn rate are given."""
    crowd = []
    if not shaped or opts.users is not None or opts.spawn_rate is not None:
        crowd = ["-u", str(opts.users or DEFAULT_USERS), "-r", str(opts.spawn_rate or DEFAULT_SPAWN_RATE)]
    return [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", *crowd, "-t", opts.run_time,
            "--host", gateway_url, "--csv", str(csv_prefix), "--only-summary", *opts.locust_args]


def gateway_of(home: Path, lesson_dir: Path) -> str:
    """The running stack's gateway URL; a warning when that stack runs another lesson."""
    state = read_state(home)
    if not state or not state.get("gateway_url"):
        raise UserError(f"no stack is running in {home}; start one with "
                        f"`minimesh up lessons/{lesson_dir.name} --detach` (or pass --gateway URL)")
    running = state.get("lesson")
    if running and Path(running).resolve() != lesson_dir:
        print(f"note: the running stack is {Path(running).name}, not {lesson_dir.name}", file=sys.stderr)
    return state["gateway_url"]


def check_reachable(url: str) -> None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=3):
            pass
    except OSError as e:
        raise UserError(f"the gateway at {url} does not answer ({e.strerror or e}); "
                        "is the stack up? (`minimesh status`)") from e


def run_load(ref: str, opts: LoadOptions, gateway: str | None = None, home: str | None = None) -> int:
    """Run the lesson's locustfile; return locust's exit code."""
    lesson_dir = find_lesson(ref)
    locustfile = lesson_dir / "locustfile.py"
    if not locustfile.is_file():
        raise UserError(f"lesson {lesson_dir.name} has no locustfile.py")
    if importlib.util.find_spec("locust") is None:
        raise UserError("locust is not installed here; install it with `pip install -e '.[load]'`")
    home_path = resolve_home(home)
    url = gateway or gateway_of(home_path, lesson_dir)
    check_reachable(url)
    prefix = Path(opts.csv_prefix) if opts.csv_prefix else csv_prefix_for(home_path, lesson_dir.name, time.time())
    prefix.parent.mkdir(parents=True, exist_ok=True)
    source = locustfile.read_text(encoding="utf-8")
    shaped = has_shape(source)
    if shape_ignores_run_time(source):
        print(f"note: {lesson_dir.name}'s load shape sets its own length and ignores -t "
              "(a shape honours -t by reading parsed_options.run_time in tick())", file=sys.stderr)
    cmd = locust_command(locustfile, url, opts, prefix, shaped)
    crowd = f"{cmd[cmd.index('-u') + 1]} users" if "-u" in cmd else "the lesson's own load shape"
    print(f"locust: {crowd} of {lesson_dir.name}/locustfile.py against {url} for {opts.run_time}", flush=True)
    # The shoppers talk to the gateway directly; a proxy set in this shell must not sit in between.
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    code = subprocess.call(cmd, env=env)
    print(f"CSV: {prefix}_stats.csv (also _failures, _exceptions, _stats_history)")
    print("locust: " + ("passed the error-ratio gate" if code == 0 else f"exit code {code}: see above"))
    return code
