"""`minimesh up`, `status` and `down`: the user's handle on a local stack.

`up` runs the supervisor in the foreground (Ctrl-C stops the stack) or, with
`--detach`, starts it as a background process in its own session and returns
once state.json says every instance is ready. `down` asks the supervisor to
stop (SIGTERM) and then checks for itself that every recorded process is gone
and every recorded port is closed — and if the supervisor is already dead, it
finishes the job on the processes it left behind.
"""

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from minimesh.errors import UserError
from minimesh.runner import persist
from minimesh.runner import state as st
from minimesh.runner.control_client import ControlClient
from minimesh.runner.ports import GATEWAY_HINT, ensure_free, is_listening
from minimesh.runner.supervisor import READY_TIMEOUT, Supervisor
from minimesh.runner.topology import load_lesson

DOWN_TIMEOUT = 30.0


def up(lesson_dir: str, *, detach: bool, gateway_port: int, home: str | None = None,
       fresh: bool = False) -> None:
    home_path = st.resolve_home(home)
    lesson = load_lesson(lesson_dir)  # a missing lesson or a bad lesson.yaml fails here, in one line
    st.refuse_if_running(home_path)  # before anything is touched: a live stack is the learner's
    if gateway_port:
        ensure_free(gateway_port, "gateway", GATEWAY_HINT)
    kept = persist.keep_or_forget(home_path, lesson.dir.name, fresh=fresh)
    if kept == "kept":
        click.echo(f"minimesh: keeping the config applied in this lesson's last run "
                   f"(`minimesh up {lesson_dir} --fresh` starts clean)")
    if detach:
        state = _start_detached(lesson.dir, home_path, gateway_port)
        click.echo(summary(state, foreground=False))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    supervisor = Supervisor(lesson, home_path, gateway_port)
    asyncio.run(supervisor.run(on_ready=lambda s: click.echo(summary(s, foreground=True))))


def _start_detached(lesson_dir: Path, home: Path, gateway_port: int) -> dict:
    """Start the supervisor in the background and wait for it to say "ready".

    Ctrl-C while waiting stops what was started: the supervisor runs in its
    own session, so the terminal's SIGINT never reaches it — we pass it on.
    """
    log_path = st.logs_dir(home) / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "minimesh.runner", "--home", str(home),
             "--gateway-port", str(gateway_port), str(lesson_dir)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own session: closing this terminal does not stop it
    try:
        return _wait_ready(proc, home, log_path)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave it half-stopped
        _stop_supervisor(proc.pid)
        proc.wait()
        stop_leftovers(home)
        raise UserError("interrupted: stopped the stack that was starting; nothing is left running") from None


def _wait_ready(proc: subprocess.Popen, home: Path, log_path: Path) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT + 10  # the supervisor gives up first, with details
    while time.monotonic() < deadline:
        state = st.read_state(home)
        if state and state.get("supervisor_pid") == proc.pid and state.get("status") == "ready":
            return state
        if proc.poll() is not None:
            raise UserError(_supervisor_error(log_path, proc.returncode))
        time.sleep(0.05)
    proc.terminate()
    raise UserError(f"the stack was not ready after {READY_TIMEOUT:.0f}s; see {log_path}")


def _supervisor_error(log_path: Path, code: int) -> str:
    """The supervisor's own one-line error (it prints `minimesh: …` last), or where to look."""
    lines = log_path.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith("minimesh: "):
            return line.removeprefix("minimesh: ")
    return f"the supervisor exited with code {code} before the stack was ready; see {log_path}"


def summary(state: dict, *, foreground: bool) -> str:
    home = Path(state["home"])
    prefix = "" if st.resolve_home(None) == home else f"MINIMESH_HOME={home} "
    n = len(state.get("processes", {}))
    stop = "Ctrl-C here, or " if foreground else ""
    return "\n".join([
        f"minimesh: {state.get('title') or 'the stack'} is up ({n} processes)",
        f"  gateway  {state['gateway_url']}    try: curl {state['gateway_url']}/",
        *([f"  https    {state['gateway_https_url']}    (Gateway servers on port 443)"]
          if state.get("gateway_https_url") else []),
        f"  control  {state['control_url']}",
        f"  status   {prefix}minimesh status",
        f"  logs     {state['logs']}/",
        f"  stop     {stop}{prefix}minimesh down",
    ])


# --- status -------------------------------------------------------------------


def status(*, as_json: bool, control: str | None = None, home: str | None = None) -> None:
    home_path = st.resolve_home(home)
    state = None if control else _running_state(home_path)
    control_url = control or state["control_url"]
    try:
        cp = ControlClient(control_url, timeout=2.0, home=home_path).status()
        cp_error = None
    except UserError as e:
        if state is None:
            raise  # only a control plane was asked about, and it does not answer
        cp, cp_error = {}, str(e)  # the stack's own record still tells the user something
    report = dict(state or {"control_url": control_url, "gateway_url": None, "instances": []})
    report["control"] = cp if cp_error is None else {"error": cp_error}
    proxies = {p.get("node"): p for p in cp.get("proxies", [])}
    for inst in report["instances"]:
        p = proxies.get(inst["instance"], {})
        inst["acked_version"] = p.get("acked_version")
        inst["acked_config_version"] = p.get("acked_config_version")
        inst["nack_error"] = p.get("nack_error")
        inst["identity"] = p.get("identity")
        inst["certificate"] = p.get("certificate")  # serial and expiry, as the sidecar last reported
        # Outlier detection: which callers' sidecars have ejected this instance now.
        inst["ejected_by"] = sorted({e["by"] for e in cp.get("ejections", []) if e.get("instance") == inst["instance"]})
        inst["ejected"] = bool(inst["ejected_by"])
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(_status_text(report, cp, cp_error))


def _running_state(home: Path) -> dict:
    state = st.read_state(home)
    if not state or not st.is_locked(home):
        raise UserError(f"no stack is running in {home}; start one with `minimesh up LESSON_DIR`")
    return state


def _status_text(report: dict, cp: dict, cp_error: str | None) -> str:
    out = [f"home     {report['home']}"] if report.get("home") else []
    if report.get("lesson"):
        out.append(f"lesson   {report.get('title')} ({report['lesson']}) — {report.get('status')}")
        out.append(f"gateway  {report['gateway_url']}")
        if report.get("gateway_https_url"):
            out.append(f"https    {report['gateway_https_url']}")
    if cp_error:
        out.append(f"control  {report['control_url']} — DOWN: {cp_error}")
    else:
        out.append(f"control  {report['control_url']} — config version {cp.get('config_version')}")
    procs = report.get("processes", {})
    registered = {p.get("node") for p in cp.get("proxies", [])}
    rows = [("INSTANCE", "APP", "INBOUND", "OUTBOUND", "ADMIN", "CONFIG", "RESTARTS")]
    for inst in report["instances"]:
        synced = "?" if cp_error else _config_column(inst, cp.get("config_version"), inst["instance"] in registered)
        restarts = sum(procs.get(n, {}).get("restarts", 0) for n in (inst["instance"], inst["instance"] + ".sidecar"))
        rows.append((inst["instance"], inst["app"], inst["inbound"], inst["outbound"], inst["admin"],
                     synced, str(restarts)))
    # Proxies with no app of their own (the gateway) have a config too.
    known = {inst["instance"] for inst in report["instances"]}
    for p in cp.get("proxies", []):
        if p.get("node") not in known:
            rows.append((p["node"], "-", "-", "-", "-", _config_column(p, cp.get("config_version"), True), "-"))
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out.append("")
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out += _ejections_text(cp.get("ejections", []), time.time())
    out += _certificates_text(cp.get("proxies", []), time.time())
    return "\n".join(out)


def _ejections_text(ejections: list[dict], now: float) -> list[str]:
    """One line per ejected instance: who ejected it (outlier detection), why, and for how long still."""
    if not ejections:
        return []
    lines = ["", "outlier detection (each caller's sidecar decides for itself):"]
    for e in ejections:
        lines.append(f"  {e['instance']} ejected by {e['by']} — {e.get('reason') or 'errors'}; "
                     f"back in {max(0.0, e['until'] - now):.0f}s")
    return lines


def _certificates_text(proxies: list[dict], now: float) -> list[str]:
    """Each proxy's workload identity: SPIFFE ID, certificate serial, time to expiry."""
    rows = [("PROXY", "SPIFFE ID", "SERIAL", "EXPIRES IN")]
    for p in proxies:
        cert = p.get("certificate") or {}
        if not p.get("identity"):
            rows.append((p["node"], "(no identity: plaintext only)", "-", "-"))
            continue
        left = cert.get("not_after", now) - now
        rows.append((p["node"], p["identity"], cert.get("serial", "?"), _duration(left) if cert else "?"))
    if len(rows) == 1:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [""] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "EXPIRED"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _config_column(proxy: dict, current, registered: bool) -> str:
    """The config version a proxy has ACKed, against the control plane's current one."""
    if proxy.get("state") == "stopped":
        return "stopped"
    if not registered:
        return "not registered"
    if proxy.get("nack_error"):
        return f"NACK: {proxy['nack_error']}"
    acked = proxy.get("acked_config_version")
    if acked is None:
        return "not acked"
    return f"v{acked} ✓" if acked == current else f"v{acked} (behind v{current})"


# --- down ----------------------------------------------------------------------


def down(*, home: str | None = None) -> None:
    home_path = st.resolve_home(home)
    if not st.is_locked(home_path) and not st.read_state(home_path):
        click.echo(f"minimesh: nothing is running in {home_path}")
        return
    stop_leftovers(home_path)
    click.echo(f"minimesh: stopped the stack in {home_path}")


def stop_leftovers(home_path: Path) -> None:
    """Stop the supervisor if it lives, then whatever it left behind; check every port closed."""
    state = st.read_state(home_path) or {}
    locked = st.is_locked(home_path)
    supervisor = state.get("supervisor_pid") or (st.lock_holder(home_path) if locked else None)
    if locked and st.pid_alive(supervisor):
        _stop_supervisor(supervisor)
    # Whatever the supervisor left behind (or all of it, if it was already dead).
    leftovers = [p for p in st.recorded_pids(state) if st.pid_alive(p) and st.belongs_to_stack(p, home_path)]
    _terminate(leftovers)
    ports = st.recorded_ports(state)
    if not _wait(lambda: not any(is_listening(p, timeout=0.2) for p in ports), 10):
        still = [p for p in ports if is_listening(p, timeout=0.2)]
        raise UserError(f"stopped the stack, but ports {', '.join(map(str, still))} still listen; "
                        "something outside minimesh holds them")
    st.remove_state(home_path)


def _stop_supervisor(pid: int) -> None:
    """SIGTERM: the supervisor stops its children (proxies first) and exits; SIGKILL if it hangs."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not _wait(lambda: not st.pid_alive(pid), DOWN_TIMEOUT):
        os.kill(pid, signal.SIGKILL)  # its children follow it (PR_SET_PDEATHSIG)
        _wait(lambda: not st.pid_alive(pid), 5)


def _terminate(pids: list[int], grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if _wait(lambda: not any(st.pid_alive(p) for p in pids), grace):
            return


def _wait(condition, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
