"""A running stack's home: where its state.json, logs and lock live.

`MINIMESH_HOME` is one stack. Its default is per user, whatever the current
directory (the XDG state directory: `$XDG_STATE_HOME/minimesh`, else
`~/.local/state/minimesh`, on macOS too, so that the compose files' bind
mount of the operator's credentials finds the same folder), so `minimesh
status` from any folder finds the stack `make demo` started. The supervisor holds an
exclusive lock on `<home>/supervisor.lock` for as long as it lives — the kernel
drops the lock when the process dies, even by SIGKILL, so "is a stack running
here?" never trusts a stale pid. `<home>/state.json` (written atomically) tells
the other commands where everything is:

    {"lesson", "control_url", "gateway_url", "gateway_https_url", "supervisor_pid", "started_at",
     "status": "starting" | "ready", "instances": [{service, version, instance,
     app, inbound, outbound, admin, pids: {app, sidecar}}], "processes": {...}}
"""

import fcntl
import json
import os
from pathlib import Path

from minimesh.errors import UserError


def default_home(environ=os.environ) -> Path:
    """The per-user home used when neither --home nor MINIMESH_HOME says otherwise."""
    user = Path(environ.get("HOME") or Path.home())
    state = environ.get("XDG_STATE_HOME")
    # The XDG spec: a relative XDG_STATE_HOME is invalid and must be ignored.
    base = Path(state) if state and os.path.isabs(state) else user / ".local" / "state"
    return base / "minimesh"


def resolve_home(value: str | os.PathLike | None = None) -> Path:
    """The stack's home as an absolute path (so children and `down` agree on it)."""
    chosen = value or os.environ.get("MINIMESH_HOME") or default_home()
    return Path(chosen).expanduser().resolve()


def state_path(home: Path) -> Path:
    return home / "state.json"


def logs_dir(home: Path) -> Path:
    return home / "logs"


def read_state(home: Path) -> dict | None:
    try:
        return json.loads(state_path(home).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None  # half-written by a crashed older version; treat as absent


def write_state(home: Path, state: dict) -> None:
    """Write state.json atomically: readers see the old file or the new one, never half."""
    path = state_path(home)
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_state(home: Path) -> None:
    state_path(home).unlink(missing_ok=True)


class HomeLock:
    """The supervisor's claim on a home; `acquire()` is False when another holds it."""

    def __init__(self, home: Path):
        self.path = home / "supervisor.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        # The holder's pid, for `down` when state.json is not written yet.
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_locked(home: Path) -> bool:
    """True while a supervisor holds this home."""
    if not (home / "supervisor.lock").exists():
        return False
    probe = HomeLock(home)
    if probe.acquire():
        probe.release()
        return False
    return True


def refuse_if_running(home: Path) -> None:
    """One home runs one stack: name the one running and how to stop it; change nothing."""
    if is_locked(home):
        raise UserError(running_message(home, read_state(home) or {}))


def running_message(home: Path, state: dict) -> str:
    lesson = Path(state["lesson"]).name if state.get("lesson") else "a lesson"
    where = f", gateway {state['gateway_url']}" if state.get("gateway_url") else ""
    return (f"a stack is already running in {home} ({lesson}{where}); "
            "`minimesh down` stops it, or set MINIMESH_HOME to another folder to run a second one")


def lock_holder(home: Path) -> int | None:
    """The pid written into the lock file by its holder (meaningful only while locked)."""
    try:
        return int((home / "supervisor.lock").read_text().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def belongs_to_stack(pid: int, home: Path) -> bool:
    """True when `pid` was started for this home (checked on Linux, where /proc shows the environment).

    A pid in an old state.json may have been reused by an unrelated process; we never kill that.
    """
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"MINIMESH_STACK={home}".encode() in f.read().split(b"\0")
    except FileNotFoundError:
        return os.path.isdir(f"/proc/{pid}") or not os.path.isdir("/proc")
    except PermissionError:
        return False


def pid_alive(pid: int | None) -> bool:
    """True when `pid` is a live process (a zombie waiting to be reaped counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            # The state letter follows the command name in parentheses, which may contain spaces.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return os.path.exists(f"/proc/{pid}") or not os.path.isdir("/proc")


def recorded_pids(state: dict) -> list[int]:
    """Every child pid state.json knows about (the supervisor's excluded)."""
    procs = state.get("processes") or {}
    return [p["pid"] for p in procs.values() if p.get("pid")]


def recorded_ports(state: dict) -> list[int]:
    procs = state.get("processes") or {}
    return sorted({port for p in procs.values() for port in p.get("ports", [])})
