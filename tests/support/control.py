"""`run_control_plane()`: a real `minimesh control` subprocess for integration tests.

Like uvicorn's `run_server` helper: start the process on port 0, wait until
it has written `<home>/control/url` and answers /healthz, hand the test an
object to talk to it, and stop it afterwards whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp


def minimesh_command() -> list[str]:
    """The installed `minimesh` script beside this interpreter, else `python -m minimesh.cli`."""
    script = Path(sys.executable).with_name("minimesh")
    return [str(script)] if script.exists() else [sys.executable, "-m", "minimesh.cli"]


async def wait_for(condition, deadline_s: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll an async condition until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        await asyncio.sleep(interval)


class ControlPlaneProcess:
    """A running control plane: `.url`, `.proc`, `.kill()`, `.restart()`, `.stop()`."""

    def __init__(self, home: Path, ttl: float, warmup: float, port: int = 0):
        self.home = Path(home)
        self.ttl, self.warmup, self.port = ttl, warmup, port
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / "control.log"

    async def start(self, deadline_s: float = 15.0) -> None:
        url_file = self.home / "control" / "url"
        url_file.unlink(missing_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MINIMESH_CONTROL_WARMUP": str(self.warmup)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*minimesh_command(), "control", "--port", str(self.port), "--home", str(self.home),
                 "--instance-ttl", str(self.ttl)],
                stdout=log, stderr=subprocess.STDOUT, env=env)

        async def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"control plane exited with {self.proc.returncode}:\n{self.logs()}")
            if not url_file.exists():
                return False
            url = url_file.read_text().strip()
            try:
                async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
                    return url if r.status == 200 else False
            except aiohttp.ClientError:
                return False

        self.url = await wait_for(healthy, deadline_s, what="control plane /healthz")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, like a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    async def restart(self) -> None:
        """Kill (if running) and start again with the same home; the URL may change."""
        self.kill()
        await self.start()


@contextlib.asynccontextmanager
async def run_control_plane(home, ttl: float = 10.0, warmup: float = 0.0):
    cp = ControlPlaneProcess(Path(home), ttl, warmup)
    try:
        await cp.start()
        yield cp
    finally:
        cp.stop()
