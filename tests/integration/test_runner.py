"""The local runner end to end: real `minimesh up/status/down/apply` subprocesses.

Each test writes a tiny lesson of demo services into tmp_path, runs it in its
own MINIMESH_HOME on free ports, and checks what a user would notice: that the
stack answers, that `down` leaves nothing behind, that a crashed process comes
back, and that mistakes produce one clear line instead of a traceback.
"""

import json
import os
import signal
import socket
import time
import urllib.request

import pytest

from minimesh.runner.state import pid_alive
from tests.support.stack import CATALOG_VS as VS, own_resources, cli, demo, running_stack, start_stack, stop_stack, wait_for, write_lesson

pytestmark = pytest.mark.timeout(120)

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(url: str, host: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with NO_PROXY.open(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def addresses(status: dict) -> list[str]:
    out = [status["control_url"].removeprefix("https://"), status["gateway_url"].removeprefix("http://")]
    for inst in status["instances"]:
        out += [inst[k] for k in ("app", "inbound", "outbound", "admin")]
    return out


@pytest.fixture
def lesson(tmp_path):
    return write_lesson(tmp_path / "lesson", {
        "catalog": {"v1": demo("catalog", replicas=2)},
        "pricing": {"v1": demo("pricing")},
    }, gateway="catalog")


def test_up_status_down_leaves_nothing_behind(lesson, tmp_path):
    home = tmp_path / "home"
    # Start the stack in the background; it must be ready quickly.
    started = time.monotonic()
    with running_stack(lesson, home) as stack:
        took = time.monotonic() - started
        assert "is up" in stack.up_result.stdout and "minimesh down" in stack.up_result.stdout
        assert took < 20, f"up --detach took {took:.1f}s"

        # status --json lists every instance with addresses that answer.
        status = stack.status()
        assert sorted(i["instance"] for i in status["instances"]) == ["catalog-v1-0", "catalog-v1-1", "pricing-v1-0"]
        for inst in status["instances"]:
            assert {"service", "version", "app", "inbound", "outbound", "admin"} <= inst.keys()
        assert all(listening(a) for a in addresses(status))

        # The gateway routes by Host through the mesh; any other Host goes to the lesson's gateway service.
        code, body = http_get(status["gateway_url"] + "/prices?ids=p1", host="pricing")
        assert code == 200 and json.loads(body)["service"] == "pricing"
        code, body = http_get(status["gateway_url"] + "/items")
        assert code == 200 and json.loads(body)["service"] == "catalog"

        # A second `up` in the same home is refused in one line.
        again = stack.cli("up", str(lesson), "--detach", "--gateway-port", "0")
        assert again.returncode == 1 and "already running" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1

        pids = stack.all_pids()
        down = stack.cli("down")
        assert down.returncode == 0, down.stderr

    # Nothing of the stack is left: no process, no listening port, no state.
    assert not [p for p in pids if pid_alive(p)]
    assert not [a for a in addresses(status) if listening(a)]
    assert not (home / "state.json").exists()

    # down and status with nothing running: one line each.
    again = cli("down", home=home)
    assert again.returncode == 0 and "nothing is running" in again.stdout
    st = cli("status", home=home)
    assert st.returncode == 1 and len(st.stderr.strip().splitlines()) == 1 and "Traceback" not in st.stderr


def test_sigkill_of_the_supervisor_takes_every_child_down(lesson, tmp_path):
    home = tmp_path / "home"
    stack = start_stack(lesson, home)
    pids = stack.all_pids()
    try:
        children = pids[1:]
        assert children and all(pid_alive(p) for p in children)

        os.kill(stack.state()["supervisor_pid"], signal.SIGKILL)

        # PR_SET_PDEATHSIG: the kernel kills every child when the supervisor dies.
        wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=15, what="children to die")
        # `down` afterwards tidies the stale state in one line.
        down = cli("down", home=home)
        assert down.returncode == 0 and not (home / "state.json").exists()
    finally:
        stop_stack(home, pids)


@pytest.mark.parametrize("victim", ["catalog-v1-0", "control"])
def test_a_killed_child_is_restarted(lesson, tmp_path, victim):
    with running_stack(lesson, tmp_path / "home") as stack:
        before = stack.state()["processes"][victim]
        # Kill one process outright, like an OOM kill.
        os.kill(before["pid"], signal.SIGKILL)

        # The supervisor starts it again (restartPolicy: Always) and records the new pid.
        after = wait_for(lambda: (p := stack.state()["processes"][victim])["pid"] != before["pid"] and p,
                         timeout=20, what=f"{victim} to be restarted")
        assert after["restarts"] == 1
        wait_for(lambda: listening(f"127.0.0.1:{before['ports'][0]}"), timeout=20, what=f"{victim} to listen again")
        assert "restarting" in open(before["log"]).read()

        if victim == "control":
            # The restarted control plane answers the CLI again.
            wait_for(lambda: stack.cli("get", "-o", "json").returncode == 0, timeout=20, what="control plane")


def test_gateway_port_in_use_is_one_line(lesson, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("up", str(lesson), "--detach", "--gateway-port", str(port), home=tmp_path / "home")
    assert r.returncode == 1
    assert r.stderr.strip() == (f"minimesh: port {port} is already in use (gateway); stop whatever holds it, "
                                "or choose another port: `minimesh up LESSON_DIR --port 8081` "
                                "(or `make demo PORT=8081`; --port 0 takes any free port)")
    assert not (tmp_path / "home" / "state.json").exists()


@pytest.mark.parametrize("make_dir, words", [
    (lambda p: p / "no-such-lesson", "does not exist"),
    (lambda p: p, "has no lesson.yaml"),
])
def test_missing_lesson_is_one_line(tmp_path, make_dir, words):
    # Named even when the default gateway port is taken too: the lesson is the first thing wrong.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("up", str(make_dir(tmp_path)), "--detach", "--port", str(port), home=tmp_path / "home")
    assert r.returncode == 1 and words in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_an_app_that_crashes_at_start_is_named(tmp_path):
    crash = tmp_path / "crash.py"
    crash.write_text("raise SystemExit('cannot open the database')\n")
    lesson = write_lesson(tmp_path / "lesson", {"db": {"v1": {"command": ["python", str(crash)]}}})
    r = cli("up", str(lesson), "--detach", "--gateway-port", "0", home=tmp_path / "home")
    assert r.returncode == 1
    assert "db-v1-0 exited during start-up" in r.stderr and "cannot open the database" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1




def test_apply_get_delete_and_a_bad_file_changes_nothing(lesson, tmp_path):
    good = tmp_path / "vs.yaml"
    good.write_text(VS)
    bad = tmp_path / "bad.yaml"
    bad.write_text(VS.replace("  - route:", "  - retriez: {}\n    route:"))

    with running_stack(lesson, tmp_path / "home") as stack:
        # A good manifest: kubectl-style lines and the new config version.
        r = stack.cli("apply", str(good))
        assert r.returncode == 0, r.stderr
        assert "virtualservice/catalog created" in r.stdout
        version = json.loads(stack.cli("get", "-o", "json").stdout)["version"]

        # A bad one: exit 1, file and line named, nothing sent.
        r = stack.cli("apply", str(bad))
        assert r.returncode == 1 and f"{bad}:8:" in r.stderr and "Traceback" not in r.stderr
        assert json.loads(stack.cli("get", "-o", "json").stdout)["version"] == version

        # get prints the stored manifests as YAML; delete removes one.
        r = stack.cli("get", "vs")
        assert r.returncode == 0 and "kind: VirtualService" in r.stdout and "name: catalog" in r.stdout
        r = stack.cli("delete", "virtualservice", "catalog")
        assert r.returncode == 0 and "virtualservice/catalog deleted" in r.stdout
        assert own_resources(stack.cli("get", "-o", "json")) == []
        r = stack.cli("delete", "virtualservice", "catalog")
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1


def test_two_homes_run_two_stacks_and_a_lesson_applies_its_manifests(lesson, tmp_path):
    # The second lesson brings its own starting config, applied at `up`.
    second = write_lesson(tmp_path / "second", {"catalog": {"v1": demo("catalog")}}, manifests=["vs.yaml"])
    (second / "vs.yaml").write_text(VS)

    with running_stack(lesson, tmp_path / "one") as one, running_stack(second, tmp_path / "two") as two:
        a, b = one.status(), two.status()
        assert a["control_url"] != b["control_url"] and a["gateway_url"] != b["gateway_url"]
        assert [r["metadata"]["name"] for r in own_resources(two.cli("get", "-o", "json"))] == ["catalog"]
        assert own_resources(one.cli("get", "-o", "json")) == []

        # Stopping one leaves the other serving.
        assert one.cli("down").returncode == 0
        code, body = http_get(b["gateway_url"] + "/items")
        assert code == 200 and json.loads(body)["service"] == "catalog"
