"""What a newcomer does to a local stack without meaning harm (issue 18).

Real `minimesh` and `make` subprocesses on a tiny lesson in a temp home:

- defect 1: `make demo` (or a second `up`) beside a live stack refuses, names
  the running lesson and how to stop it, and leaves that stack running;
- defect 6: applied config survives `down`/`up`; `up --fresh` starts clean;
- defect 13: the default home is per user, whatever the current directory;
- defect 14: a taken gateway port fails fast, naming the port and the setting;
- defect 15: Ctrl-C during `up --detach` stops what it started.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minimesh.runner.state import is_locked, pid_alive, read_state
from tests.support.stack import CATALOG_VS as VS, own_resources, REPO, cli, demo, running_stack, wait_for, write_lesson

pytestmark = pytest.mark.timeout(180)



@pytest.fixture
def lesson(tmp_path):
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "catalog-vs.yaml").write_text(VS)
    return write_lesson(tmp_path / "shop", {"catalog": {"v1": demo("catalog")}}, gateway="catalog",
                        manifests=["catalog-vs.yaml"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_demo(home: Path, port: int) -> subprocess.CompletedProcess:
    """`make demo PORT=…` as a learner types it, with this interpreter's venv; setup is not redone."""
    env = {k: v for k, v in os.environ.items() if k not in ("MINIMESH_GATEWAY_PORT", "MINIMESH_CONTROL_URL")}
    env["MINIMESH_HOME"] = str(home)
    return subprocess.run(["make", "-s", "-o", "setup", "demo", f"PORT={port}",
                           f"BIN={Path(sys.executable).parent}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_make_demo_beside_a_live_stack_refuses_and_leaves_it_running(lesson, tmp_path):
    # Defect 1: before the fix, `up` failed and then make's EXIT trap ran `minimesh down`.
    with running_stack(lesson, tmp_path / "home") as stack:
        pids = stack.all_pids()
        config = stack.cli("get", "-o", "json").stdout

        # The same port as the running stack: what a learner typing `make demo` twice does.
        r = make_demo(stack.home, int(stack.state()["gateway_url"].rsplit(":", 1)[1]))

        # Refused, naming the running lesson and how to stop it ...
        assert r.returncode != 0
        assert "already running" in r.stderr and "shop" in r.stderr and "minimesh down" in r.stderr
        # ... and nothing of the learner's stack was touched.
        assert all(pid_alive(p) for p in pids), "make demo stopped the learner's stack"
        assert is_locked(stack.home) and stack.status()["instances"]
        assert stack.cli("get", "-o", "json").stdout == config


def test_config_survives_down_and_up_and_fresh_starts_clean(lesson, tmp_path):
    # Defect 6: one rule in both modes — config survives down/up; `up --fresh` starts clean.
    home = tmp_path / "home"
    changed = tmp_path / "changed.yaml"
    changed.write_text(VS + "    timeout: 7s\n")
    with running_stack(lesson, home) as stack:
        assert stack.cli("apply", str(changed)).returncode == 0
    # The same lesson again: the learner's change is still in force (not the lesson's starting manifest).
    with running_stack(lesson, home) as stack:
        assert "keeping the config" in stack.up_result.stdout and "--fresh" in stack.up_result.stdout
        kept = own_resources(stack.cli("get", "-o", "json"))
        assert [r["spec"]["http"][0].get("timeout") for r in kept] == ["7s"]
    # --fresh: back to the lesson's own starting manifests.
    r = cli("up", str(lesson), "--detach", "--port", "0", "--fresh", home=home)
    try:
        assert r.returncode == 0, r.stderr
        fresh = own_resources(cli("get", "-o", "json", home=home))
        assert [r["spec"]["http"][0].get("timeout") for r in fresh] == [None]
    finally:
        cli("down", home=home)


def test_the_default_home_is_per_user_whatever_the_directory(lesson, tmp_path):
    # Defect 13: before, the default was ./.minimesh, so `status` from another folder found nothing.
    user = tmp_path / "user"
    env = {k: v for k, v in os.environ.items()
           if k not in ("MINIMESH_HOME", "XDG_STATE_HOME", "MINIMESH_GATEWAY_PORT", "MINIMESH_CONTROL_URL")}
    env["HOME"] = str(user)
    expected = user / ".local" / "state" / "minimesh"

    def run(*args, cwd):
        cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.run([sys.executable, "-m", "minimesh.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=90)

    # Every command that defaults its home agrees on it, from any folder.
    assert run("home", cwd=tmp_path / "a").stdout.strip() == str(expected)
    assert run("home", cwd=tmp_path / "b").stdout.strip() == str(expected)
    assert run("token", "web", cwd=tmp_path / "c").returncode == 0
    assert list((expected / "control").iterdir()), "`minimesh token` kept its secret somewhere else"

    up = run("up", str(lesson), "--detach", "--port", "0", cwd=tmp_path / "a")
    try:
        assert up.returncode == 0, up.stderr
        status = run("status", cwd=tmp_path / "b")
        assert status.returncode == 0, status.stderr
        assert f"home     {expected}" in status.stdout
    finally:
        run("down", cwd=tmp_path / "b")
    assert not is_locked(expected)


def test_a_taken_port_fails_fast_naming_the_port_and_the_setting(lesson, tmp_path):
    # Defect 14: the commonest first failure, in one line and well under 5 s.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        r = cli("up", str(lesson), "--detach", "--port", str(port), home=tmp_path / "home")
        took = time.monotonic() - started
        demo_run = make_demo(tmp_path / "home2", port)
    assert r.returncode == 1 and took < 5, took
    assert f"port {port} is already in use" in r.stderr and "--port" in r.stderr and "PORT=" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # make demo stops at the doctor, which names the port and `make demo PORT=…`.
    assert demo_run.returncode != 0
    assert f"port {port}" in demo_run.stdout and f"make demo PORT={port + 1}" in demo_run.stdout
    assert not (tmp_path / "home2" / "state.json").exists()


def test_ctrl_c_during_up_detach_stops_what_it_started(tmp_path):
    # Defect 15: before, "Aborted" was printed and the stack went on starting in the background.
    never_ready = tmp_path / "slow.py"
    never_ready.write_text("import time\ntime.sleep(120)\n")  # an app that never listens: start-up never ends
    lesson = write_lesson(tmp_path / "slow", {"slow": {"v1": {"command": ["python", str(never_ready)]}}})
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MINIMESH_GATEWAY_PORT", "MINIMESH_CONTROL_URL")}
    env["MINIMESH_HOME"] = str(home)
    # As from a terminal: a test run started in the background by a script (`nohup make test &`) inherits SIGINT ignored,
    # and an ignored signal stays ignored across exec, so `up` would never see the Ctrl-C.
    up = subprocess.Popen([sys.executable, "-m", "minimesh.cli", "up", str(lesson), "--detach", "--port", "0"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # Wait until the supervisor has started children, then press Ctrl-C.
        state = wait_for(lambda: (s := read_state(home)) and any(p.get("pid") for p in s["processes"].values()) and s,
                         timeout=60, what="the stack to start starting")
        pids = [state["supervisor_pid"]] + [p["pid"] for p in state["processes"].values() if p.get("pid")]
        up.send_signal(signal.SIGINT)
        _, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 1 and "interrupted" in err and "Traceback" not in err
    # Everything it started is gone, and the home is free for the next `up`.
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=20, what="every process to stop")
    assert not is_locked(home) and read_state(home) is None
