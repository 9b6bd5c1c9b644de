"""`minimesh doctor` on a real machine, and lesson commands that know which lesson runs (issue 18).

Real `minimesh` subprocesses: a fresh home passes; a taken port, a PATH
without docker and a stopped stack each print their fix (exit 1); on a live
stack the doctor sees the control plane, the ACKs and the certificates; and
`lesson step`/`check` of another lesson refuse, naming the running one
(defect 4), without changing its config; a VirtualService for a host
that does not exist is applied with a warning (defect 7).
"""

import os
import signal
import socket
import sys
from pathlib import Path

import pytest
import yaml

from minimesh.runner.doctor import gateway_https_port
from minimesh.runner.state import pid_alive
from tests.support.stack import cli, demo, running_stack, wait_for, write_lesson

pytestmark = pytest.mark.timeout(180)


def doctor(home: Path, *args: str, env: dict | None = None):
    return cli("doctor", *args, home=home, env=env)


def test_a_fresh_setup_passes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the doctor runs: a free port
    r = doctor(tmp_path / "home", "--port", str(port))
    assert r.returncode == 0, r.stdout
    assert "✓ Python 3." in r.stdout and f"✓ port {port} is free" in r.stdout
    # 8443 is checked too; it may be held here by a compose stack of another test run: ✓ or ‼, never ✗.
    assert "✓ port 8443 is free for the gateway's HTTPS" in r.stdout or "‼ port 8443 (the gateway's HTTPS)" in r.stdout
    assert "✗" not in r.stdout and r.stdout.rstrip().splitlines()[-1].startswith("minimesh doctor: all good")


def test_a_taken_port_is_a_cross_with_its_fix(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = doctor(tmp_path / "home", "--port", str(port))
    assert r.returncode == 1
    assert f"✗ port {port} (the gateway's) is already in use" in r.stdout
    assert f"fix: stop whatever holds it, or choose another port: `make demo PORT={port + 1}`" in r.stdout


def test_a_taken_https_port_is_a_warning_with_its_fix():
    # The check itself, on a port of our own rather than this machine's 8443 (a compose run may need that).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        held = gateway_https_port(8080, https=port)
    assert held.ok is None  # `up` serves HTTPS on another free port: a lesson still runs
    assert held.what == f"port {port} (the gateway's HTTPS) is already in use: " \
                        "`minimesh up` will serve HTTPS on another free port"
    assert held.fix.startswith("`minimesh status` shows which")
    assert gateway_https_port(8080, https=port).ok is True  # closed again: free
    assert gateway_https_port(0, https=port).what == "the gateway's HTTPS takes any free port"


def test_missing_docker_prints_its_fix(tmp_path):
    # A PATH with this Python and nothing else: no docker, no docker-compose.
    env = {"PATH": str(Path(sys.executable).parent)}
    plain = doctor(tmp_path / "home", "--port", "0", env=env)
    assert plain.returncode == 0, plain.stdout  # local mode needs no Docker: a warning ...
    assert "‼ docker is not on PATH (only compose mode needs it)" in plain.stdout
    assert "fix: install Docker Engine or Docker Desktop" in plain.stdout
    compose = doctor(tmp_path / "home", "--compose", env=env)
    assert compose.returncode == 1  # ... and a failure when compose mode is asked for
    assert "✗ docker is not on PATH" in compose.stdout and "fix: install Docker" in compose.stdout


def other_lesson(directory: Path) -> Path:
    """A second lesson with one step whose manifest would change the running shop."""
    directory.mkdir(parents=True)
    (directory / "catalog-dr.yaml").write_text(yaml.safe_dump({
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "catalog"},
        "spec": {"host": "catalog", "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}}))
    (directory / "lesson.yaml").write_text(yaml.safe_dump({
        "title": "Another lesson",
        "services": {"catalog": {"versions": {"v1": demo("catalog")}}},
        "steps": [{"name": "round robin", "manifests": ["catalog-dr.yaml"]}]}))
    return directory


def test_doctor_on_a_live_stack_and_lesson_commands_of_another_lesson(tmp_path):
    shop = write_lesson(tmp_path / "shop", {"catalog": {"v1": demo("catalog")}}, gateway="catalog")
    other = other_lesson(tmp_path / "other")
    home = tmp_path / "home"
    with running_stack(shop, home) as stack:
        # The doctor sees the running stack: control plane, ACKs, certificates.
        r = doctor(home)
        assert r.returncode == 0, r.stdout
        for line in ("✓ a stack is running in", "✓ control plane http", " answers", "ACKed config v",
                     "✓ every certificate valid (2 proxies with an identity)"):
            assert line in r.stdout, r.stdout

        # Defect 4: a step of another lesson would apply its manifests to this shop; refused instead.
        before = stack.cli("get", "-o", "json").stdout
        for verb in (["step", str(other), "1"], ["check", str(other)]):
            r = stack.cli("lesson", *verb)
            assert r.returncode == 1, r.stdout
            assert r.stderr.strip() == ("minimesh: the running stack is lesson shop, not other; "
                                        f"`minimesh lesson {verb[0]} shop` works on it, or switch: "
                                        "`minimesh down && minimesh up lessons/other`")
        assert stack.cli("get", "-o", "json").stdout == before

        # Defect 7: a VirtualService for a host no service answers to is accepted, as on Istio,
        # with a warning naming the host (istioctl analyze's IST0101); before, it was silent.
        typo = tmp_path / "typo.yaml"
        typo.write_text(yaml.safe_dump({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "catalgo"},
            "spec": {"hosts": ["catalgo"], "http": [{"route": [{"destination": {"host": "catalgo"}}]}]}}))
        r = stack.cli("apply", str(typo))
        assert r.returncode == 0 and "virtualservice/catalgo created" in r.stdout
        assert r.stderr.strip().splitlines() == [
            "warning: VirtualService default/catalgo hosts[0]: host 'catalgo' is not a service of the mesh "
            "(services: catalog); accepted, as Istio does, but it routes nothing "
            "(istioctl analyze: IST0101 ReferencedResourceNotFound)"]
        assert stack.cli("delete", "virtualservice", "catalgo").returncode == 0

        # The supervisor dies (its children with it): the doctor says the stack stopped, and the fix.
        pids = stack.all_pids()
        os.kill(pids[0], signal.SIGKILL)
        wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=20, what="the stack to die")
        r = doctor(home)
        assert r.returncode == 1
        assert f"✗ the stack in {home} has stopped (its supervisor is gone)" in r.stdout
        assert "fix: `minimesh down` tidies what it left, then `minimesh up LESSON_DIR`" in r.stdout
