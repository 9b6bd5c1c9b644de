"""`minimesh doctor`: is this machine ready for a lesson, and is the running stack healthy?

After `linkerd check`: a list of checks, each one line — ✓ when it holds, ✗
with the fix when it does not, ‼ for a warning that does not stop a lesson
(Docker is missing, but only compose mode needs it). Any ✗ makes the command
exit 1, so `make demo` runs it first and stops with its advice.

The checks, in the order a newcomer meets the problems:

1. the Python version (3.11 or newer);
2. the home (MINIMESH_HOME or the per-user state directory) is writable;
3. the gateway port is free — unless this home's stack holds it — and so is
   8443, its HTTPS port (only a warning: `up` takes another free port then);
4. Docker, Docker Compose (v2 `docker compose` or v1 `docker-compose`) and
   the images the compose files build from — ✗ only with `--compose`;
5. with a stack running (or `--control URL` for a compose stack): the control
   plane answers, every proxy has ACKed the latest config, and every
   certificate is valid.

Each check is a small function returning `Finding`s; the I/O each needs
(running a program, asking the control plane) is passed in or done at the
edge, so the verdicts are testable without breaking a real machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from minimesh.errors import UserError
from minimesh.runner import state as st
from minimesh.runner.control_client import ControlClient
from minimesh.runner.ports import GATEWAY_HTTPS_PORT, is_free

MIN_PYTHON = (3, 11)
IMAGE = "minimesh:local"
DEFAULT_BASE_IMAGE = "python:3.11-slim"
DOCKER_TIMEOUT = 10.0


@dataclass(frozen=True)
class Finding:
    ok: bool | None  # True: ✓; False: ✗ (exit 1); None: ‼ a warning
    what: str
    fix: str = ""

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "‼"}[self.ok]


# --- the machine -----------------------------------------------------------------


def python_version(version=sys.version_info) -> Finding:
    shown = ".".join(map(str, version[:3]))
    if tuple(version[:2]) >= MIN_PYTHON:
        return Finding(True, f"Python {shown}")
    return Finding(False, f"Python {shown} is older than 3.11",
                   "install Python 3.11 or newer, then `rm -rf .venv && make demo PYTHON=python3.11`")


def home_writable(home: Path) -> Finding:
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as e:
        return Finding(False, f"home {home} is not writable ({e.strerror or e})",
                       "point MINIMESH_HOME at a folder you can write, e.g. "
                       "`export MINIMESH_HOME=/tmp/minimesh-$USER`")
    return Finding(True, f"home {home} is writable")


def gateway_port(port: int) -> Finding:
    if port == 0 or is_free(port):
        return Finding(True, f"port {port} is free for the gateway" if port else "the gateway takes any free port")
    return Finding(False, f"port {port} (the gateway's) is already in use",
                   f"stop whatever holds it, or choose another port: `make demo PORT={port + 1}` "
                   f"or `minimesh up LESSON_DIR --port {port + 1}`")


def gateway_https_port(gateway: int, https: int = GATEWAY_HTTPS_PORT) -> Finding:
    """The gateway's HTTPS port (Gateway servers on 443): `up` falls back to any free port, so only a ‼."""
    if gateway in (0, https):  # the supervisor then takes any free port for HTTPS (supervisor.py)
        return Finding(True, "the gateway's HTTPS takes any free port")
    if is_free(https):
        return Finding(True, f"port {https} is free for the gateway's HTTPS")
    return Finding(None, f"port {https} (the gateway's HTTPS) is already in use: "
                         "`minimesh up` will serve HTTPS on another free port",
                   f"`minimesh status` shows which (use it where a lesson says {https}), "
                   f"or stop whatever holds {https}")


# --- Docker, for compose mode --------------------------------------------------------


def _run(argv: list[str]) -> tuple[int, str]:
    """Run a program; (exit code, first line of its output). 127 when it is not there."""
    if not shutil.which(argv[0]):
        return 127, ""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=DOCKER_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 124, f"no answer in {DOCKER_TIMEOUT:.0f}s"
    out = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return done.returncode, out[0] if out else ""


def docker_checks(compose: bool, run=_run, environ=os.environ) -> list[Finding]:
    """Docker, its daemon, compose v2 or v1, and the images; ✗ only when compose mode is asked for."""
    bad = False if compose else None
    why = "" if compose else " (only compose mode needs it)"
    code, _ = run(["docker", "--version"])
    if code == 127:
        return [Finding(bad, f"docker is not on PATH{why}",
                        "install Docker Engine or Docker Desktop (https://docs.docker.com/get-docker/); "
                        "local mode (`minimesh up`) needs no Docker")]
    code, line = run(["docker", "info", "--format", "{{.ServerVersion}}"])
    if code != 0:
        return [Finding(bad, f"the Docker daemon does not answer{why}: {line}",
                        "start Docker (`sudo systemctl start docker`, or open Docker Desktop); "
                        "without sudo: `sudo usermod -aG docker $USER`, then log in again")]
    found = [Finding(True, f"Docker daemon {line}")]
    v2, v2_line = run(["docker", "compose", "version", "--short"])
    v1, v1_line = run(["docker-compose", "version", "--short"]) if v2 != 0 else (1, "")
    if v2 == 0:
        found.append(Finding(True, f"docker compose {v2_line} (v2)"))
    elif v1 == 0:
        found.append(Finding(True, f"docker-compose {v1_line} (v1): type `docker-compose` "
                                   "where the lessons say `docker compose`"))
    else:
        found.append(Finding(bad, f"neither `docker compose` (v2) nor `docker-compose` (v1) works{why}",
                             "install the compose plugin (https://docs.docker.com/compose/install/)"))
    base = environ.get("MINIMESH_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    for image, missing in (
        (IMAGE, f"the first `docker compose -f compose/NN-slug.yaml up` builds it from {base}"),
        (base, "the first build pulls it from a registry; offline: `sh compose/make-base-image.sh`, "
               "then MINIMESH_BASE_IMAGE=minimesh-base:bookworm"),
    ):
        code, _ = run(["docker", "image", "inspect", "--format", "{{.Id}}", image])
        if code == 0:
            found.append(Finding(True, f"image {image} is present"))
        else:
            # Only a base image the user named and does not have stops a compose build for sure.
            named = image == base and "MINIMESH_BASE_IMAGE" in environ
            found.append(Finding(bad if named else None, f"image {image} is not present", missing))
    return found


# --- a running stack --------------------------------------------------------------------


def stack_health(status: dict, now: float) -> list[Finding]:
    """The control plane's /v1/status judged: every proxy ACKed the latest config, every certificate valid."""
    current = status.get("config_version")
    proxies = status.get("proxies", [])
    behind = []
    for p in proxies:
        if p.get("state") == "stopped":
            continue
        if p.get("nack_error"):
            behind.append(f"{p['node']} NACKed: {p['nack_error']}")
        elif p.get("acked_config_version") != current:
            behind.append(f"{p['node']} has v{p.get('acked_config_version')}")
    found = [Finding(not behind, f"every proxy ({len(proxies)}) ACKed config v{current}" if not behind
                     else f"proxies behind config v{current}: {'; '.join(behind)}",
                     "" if not behind else "a NACK names the manifest to fix (`minimesh apply` a corrected one); "
                     "a proxy behind: see its log in $(minimesh home)/logs/ and `minimesh status`")]
    expired = []
    for p in proxies:
        cert = p.get("certificate") or {}
        if p.get("identity") and cert.get("not_after") is not None and cert["not_after"] <= now:
            expired.append(p["node"])
    with_identity = sum(1 for p in proxies if p.get("identity"))
    found.append(Finding(not expired, f"every certificate valid ({with_identity} proxies with an identity)"
                         if not expired else f"expired certificates: {', '.join(expired)}",
                         "" if not expired else "sidecars renew from the control plane at half-life: "
                         "make sure it answers, then look for `renewal failed` in their logs"))
    return found


def stack_checks(home: Path, control: str | None, client_for=ControlClient, now=time.time) -> list[Finding]:
    """What this home's stack (or the control plane at `control`) says about itself."""
    state = st.read_state(home)
    if control is None:
        if state and not st.is_locked(home):
            return [Finding(False, f"the stack in {home} has stopped (its supervisor is gone)",
                            "`minimesh down` tidies what it left, then `minimesh up LESSON_DIR` starts it again")]
        if not state:
            return [Finding(None, f"no stack is running in {home}",
                            "start one: `make demo`, or `minimesh up lessons/01-hello-mesh`")]
        control = state["control_url"]
        lesson = Path(state.get("lesson", "?")).name
        intro = Finding(True, f"a stack is running in {home}: {lesson}, gateway {state.get('gateway_url')}")
    else:
        intro = None
    try:
        status = client_for(control, timeout=3.0).status()
    except UserError as e:
        logs = f"{st.logs_dir(home)}/control.log" if state else "`docker compose logs control`"
        return [f for f in (intro, Finding(False, f"the control plane at {control} does not answer ({e})",
                                             f"the supervisor restarts it within seconds; if it stays down see "
                                             f"{logs}, or `minimesh down` and `minimesh up` again")) if f]
    found = [f for f in (intro, Finding(True, f"control plane {control} answers")) if f]
    return found + stack_health(status, now())


# --- all of it ----------------------------------------------------------------------------


def diagnose(*, home: Path, port: int, compose: bool, control: str | None) -> list[Finding]:
    found = [python_version(), home_writable(home)]
    running = st.is_locked(home) and control is None
    if running:
        state = st.read_state(home) or {}
        found.append(Finding(True, f"the gateway port is this stack's ({state.get('gateway_url')})"))
    elif not compose:
        found.append(gateway_port(port))
        found.append(gateway_https_port(port))
    found += docker_checks(compose)
    found += stack_checks(home, control)
    return found


def report(findings: list[Finding]) -> tuple[str, bool]:
    """The lines to print, and whether every check passed (no ✗)."""
    lines = []
    for f in findings:
        lines.append(f"{f.mark} {f.what}")
        if f.fix and f.ok is not True:
            lines.append(f"    fix: {f.fix}")
    failed = sum(1 for f in findings if f.ok is False)
    warned = sum(1 for f in findings if f.ok is None)
    lines.append("")
    if failed:
        lines.append(f"minimesh doctor: {failed} problem{'s' if failed > 1 else ''} to fix first (see fix: above)")
    else:
        lines.append("minimesh doctor: all good" + (f" ({warned} warning{'s' if warned > 1 else ''})" if warned else ""))
    return "\n".join(lines), not failed
