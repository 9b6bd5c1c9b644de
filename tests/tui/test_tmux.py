"""`minimesh tui` in a real terminal (tmux), against lesson 02 with traffic.

Must show: within 5 s of starting, the services view lists every service with
a non-zero RPS and a success rate within 2 points of `minimesh stat`; `q`
exits with status 0 and leaves the terminal usable (canonical mode and echo
back on, the alternate screen left, a shell that answers).

tmux gives CI the terminal it lacks: a detached session of fixed size on a
private socket, keys sent with send-keys, the screen read with capture-pane,
every wait a poll with a deadline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.stack import cli, running_stack
from tui.traffic import shop

ROOT = Path(__file__).resolve().parents[2]
LESSON = ROOT / "lessons" / "02-retries"
SERVICES = {"web", "catalog", "pricing", "payments"}
ROW = re.compile(r"^\s*(web|catalog|pricing|payments)\s+(v\d+)\s+(\d+/\d+)\s+([\d.]+%|-)\s+([\d.]+)\s", re.M)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")


class Tmux:
    def __init__(self, socket: str, size=(160, 45)):
        self.socket = socket
        self.size = size

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout

    def start(self, env: dict) -> None:
        exports = [f"{k}={v}" for k, v in env.items()]
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(self.size[0]), "-y",
                 str(self.size[1]), "env", *exports, "bash", "--norc", "--noprofile")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def until(self, predicate, deadline_s: float, what: str):
        deadline = time.monotonic() + deadline_s
        while True:
            text = self.screen()
            found = predicate(text)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {deadline_s}s waiting for {what}; screen:\n{text}")
            time.sleep(0.1)

    def processes(self) -> list[int]:
        """Every process under the session's shell (the TUI, and anything it started), deepest last."""
        try:
            found = [int(self.run("display-message", "-p", "-t", "t", "#{pane_pid}").strip())]
        except (subprocess.SubprocessError, ValueError):
            return []
        for pid in found:  # grows while walked: children of children
            try:
                found += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                continue
        return found

    def kill(self) -> None:
        # The pane's processes first: a TUI that outlives a failed test keeps a core busy for
        # the tests after it (kill-server only hangs up on the shell).
        stop_processes(self.processes()[1:])  # while they are surely ours: the shell's children
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        Path(f"/tmp/tmux-{os.getuid()}/{self.socket}").unlink(missing_ok=True)  # tmux leaves its socket file


def stop_processes(pids: list[int], grace_s: float = 3.0) -> None:
    """SIGTERM these processes, and SIGKILL whichever is still there after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
            time.sleep(0.05)
        if not alive:
            return
        pids = alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def service_rows(screen: str) -> dict[str, tuple[float | None, float]]:
    """service → (success %, RPS) as the services view shows them."""
    return {m[0]: (None if m[3] == "-" else float(m[3].rstrip("%")), float(m[4])) for m in ROW.findall(screen)}


def test_services_view_in_tmux_matches_minimesh_stat_and_q_restores_the_terminal(tmp_path):
    home = tmp_path / "home"
    tmux = Tmux(f"mm-tui-{time.monotonic_ns()}")
    with running_stack(LESSON, home) as stack:
        gateway = stack.status()["gateway_url"]
        stop = threading.Event()
        shopper = threading.Thread(target=shop, args=(gateway, stop, 0.03), daemon=True)
        shopper.start()
        try:
            # Let the traffic fill the window first (150 payments requests: a success rate that a few
            # requests more or less cannot move by 2 points while the two readings are taken).
            deadline = time.monotonic() + 90
            while True:
                doc = json.loads(cli("stat", "--json", "--window", "60", home=home).stdout or "{}")
                seen = {w["service"]: w["requests"] for w in doc.get("workloads", [])}
                if set(seen) >= SERVICES and seen["payments"] >= 150:
                    break
                assert time.monotonic() < deadline, f"traffic never reached every service: {doc}"
                time.sleep(0.5)

            tmux.start({"MINIMESH_HOME": str(home), "PATH": f"{Path(cli.__globals__['sys'].executable).parent}:"
                                                            "/usr/bin:/bin", "TERM": "xterm-256color"})
            tmux.keys("minimesh tui --window 60; echo EXIT=$?", "Enter")
            started = time.monotonic()
            # Within 5 s: every service with non-zero RPS.
            rows = tmux.until(lambda s: (r := service_rows(s)) and set(r) >= SERVICES
                              and all(rps > 0 for _, rps in r.values()) and r, 15, "every service with traffic")
            took = time.monotonic() - started
            stat = json.loads(cli("stat", "--json", "--window", "60", home=home).stdout)
            print(f"services view complete after {took:.2f} s: {rows}")
            assert took < 5.0, f"the services view took {took:.1f} s"
            # Success rates within 2 points of `minimesh stat` (read moments apart, over the same window).
            theirs = {w["service"]: w["success_rate"] * 100 for w in stat["workloads"] if w["success_rate"] is not None}
            for service, (success, _) in rows.items():
                assert success is not None and abs(success - theirs[service]) <= 2.0, (service, success, theirs)

            # q: exit status 0, the terminal usable again.
            tmux.keys("q")
            code = tmux.until(lambda s: re.search(r"^EXIT=(\d+)", s, re.M), 10, "the TUI to exit")
            assert code[1] == "0", tmux.screen()
            assert tmux.run("display-message", "-p", "-t", "t", "#{alternate_on}").strip() == "0"
            tmux.keys("clear; stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; "
                      "echo; echo READY-$((40+2))", "Enter")
            screen = tmux.until(lambda s: "READY-42" in s and s, 10, "the shell to answer")
            assert re.search(r"(?<!-)\bicanon\b", screen) and re.search(r"(?<!-)\becho\b", screen), screen
            assert "-icanon" not in screen and "-echo " not in screen
        finally:
            stop.set()
            tmux.kill()
            shopper.join(timeout=10)
