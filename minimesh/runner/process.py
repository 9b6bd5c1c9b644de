"""One supervised child process: start it, log it, restart it, stop it.

Like a pod with `restartPolicy: Always`: when a child dies after start-up it is
started again after a short backoff that doubles on every quick crash (0.5 s,
1 s, 2 s … at most 10 s) and resets once the child has stayed up for a while.
That is how the control plane comes back after a SIGKILL while its sidecars
keep serving from their last snapshot.

No orphans. Every child asks the kernel (Linux `prctl(PR_SET_PDEATHSIG)`) to
kill it when the supervisor dies, even by SIGKILL. (macOS has no PDEATHSIG;
there `minimesh down` kills the pids state.json recorded.) Each child runs in
a process group of its own, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children in order — proxies before the
control plane they deregister from.
"""

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from pathlib import Path

from minimesh.runner.plan import ProcessSpec

log = logging.getLogger("minimesh.runner")

PR_SET_PDEATHSIG = 1
STABLE_AFTER = 10.0  # seconds up before a crash no longer counts as "quick"


def restart_delay(quick_crashes: int, base: float = 0.5, cap: float = 10.0) -> float:
    """Backoff before restart number `quick_crashes` (1-based)."""
    return min(cap, base * 2 ** max(0, quick_crashes - 1))


def _die_with_parent_preexec(parent_pid: int):
    """Build the preexec_fn that ties a child's life to the supervisor's (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The supervisor may have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class Child:
    """A ProcessSpec brought to life; `pid` is the current process's id."""

    def __init__(self, spec: ProcessSpec, log_path: Path, base_env: dict[str, str], on_change=None):
        self.spec = spec
        self.log_path = log_path
        self.base_env = base_env
        self.on_change = on_change or (lambda child: None)
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _note(self, message: str) -> None:
        """A line in the child's own log, so a reader sees restarts where they happened."""
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"--- minimesh {time.strftime('%H:%M:%S')}: {message}\n")

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._note(f"starting {self.spec.name}: {' '.join(self.spec.argv)}")
        with open(self.log_path, "ab") as out:
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *self.spec.argv, env={**self.base_env, **self.spec.env},
                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                    preexec_fn=_die_with_parent_preexec(os.getpid()), process_group=0)
            except OSError as e:
                raise ChildFailed(self, f"could not start {self.spec.argv[0]}: {e.strerror}") from e
        self.started_at = time.monotonic()
        self.on_change(self)

    async def supervise(self) -> None:
        """Restart the child whenever it dies, until `stop()`; run as a task after start-up."""
        quick = 0
        while not self.stopping:
            code = await self.proc.wait()
            if self.stopping:
                return
            quick = quick + 1 if time.monotonic() - self.started_at < STABLE_AFTER else 1
            delay = restart_delay(quick)
            self.restarts += 1
            log.warning("%s exited (%s); restarting in %.1fs (restart #%d)",
                        self.spec.name, describe_exit(code), delay, self.restarts)
            self._note(f"exited ({describe_exit(code)}); restarting in {delay:.1f}s")
            await asyncio.sleep(delay)
            if self.stopping:
                return
            try:
                await self.start()
            except ChildFailed as e:
                self._note(str(e))  # keep trying, as a kubelet would; the log says why

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.returncode is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
        self.stopping = True
        if not self.proc or self.proc.returncode is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except asyncio.TimeoutError:
            log.warning("%s did not stop within %.0fs; killing it", self.spec.name, grace)
            self.signal(signal.SIGKILL)
            await self.proc.wait()

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines()
                     if ln.strip() and not ln.startswith("--- minimesh")]
        except FileNotFoundError:
            return ""
        return lines[-1].strip() if lines else ""


class ChildFailed(Exception):
    def __init__(self, child: Child, message: str):
        super().__init__(message)
        self.child = child


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
