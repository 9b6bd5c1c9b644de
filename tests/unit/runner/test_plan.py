"""The stack plan and the restart backoff: pure decisions, no processes."""

import itertools
from pathlib import Path

import pytest

from minimesh.runner.plan import plan_stack
from minimesh.runner.process import restart_delay
from minimesh.runner.topology import Lesson, VersionSpec


def lesson() -> Lesson:
    return Lesson(dir=Path("/l"), title="T", versions=(
        VersionSpec("web", "v1", ("/bin/web",)),
        VersionSpec("pricing", "v2", ("/bin/pricing",), replicas=2, env={"DELAY_MS": "5"},
                    labels={"track": "canary"}),
    ))


def test_plan_gives_each_instance_an_app_and_a_sidecar_with_distinct_ports():
    ports = itertools.count(20000)
    plan = plan_stack(lesson(), Path("/h"), 8080, lambda: next(ports))

    assert [p.name for p in plan.processes] == [
        "control", "web-v1-0", "web-v1-0.sidecar", "pricing-v2-0", "pricing-v2-0.sidecar",
        "pricing-v2-1", "pricing-v2-1.sidecar", "gateway"]
    all_ports = [port for p in plan.processes for port in p.ports]
    assert len(all_ports) == len(set(all_ports))

    app = next(p for p in plan.processes if p.name == "pricing-v2-1")
    ip = plan.instances[2]
    assert app.env["PORT"] == str(ip.app_port) and app.env["INSTANCE"] == "pricing-v2-1"
    assert app.env["HTTP_PROXY"] == f"http://127.0.0.1:{ip.outbound_port}"
    assert app.env["DELAY_MS"] == "5" and app.probe.path is None  # an app is any program: TCP is enough

    sidecar = next(p for p in plan.processes if p.name == "pricing-v2-1.sidecar")
    argv = " ".join(sidecar.argv)
    assert f"--control {plan.control_url}" in argv and "--label track=canary" in argv
    assert f"--app-port {ip.app_port} --inbound-port {ip.inbound_port}" in argv
    assert sidecar.probe.port == ip.admin_port and sidecar.probe.path == "/ready"

    assert "--gateway" in plan.gateway.argv and "--default-service" not in plan.gateway.argv
    assert plan.gateway_url == "http://127.0.0.1:8080"


def test_the_gateway_listens_for_https_too():
    ports = itertools.count(20000)
    plan = plan_stack(lesson(), Path("/h"), 8080, lambda: next(ports), https_port=8443)
    argv = " ".join(plan.gateway.argv)
    assert "--listen-port 8080 --tls-listen-port 8443" in argv and 8443 in plan.gateway.ports
    assert plan.gateway_https_url == "https://127.0.0.1:8443"
    # Without one chosen, a free port of the allocator's (`--gateway-port 0`: every port free).
    free = plan_stack(lesson(), Path("/h"), 20999, lambda: next(ports))
    assert free.gateway_https_url.rsplit(":", 1)[1] in " ".join(free.gateway.argv)


@pytest.mark.parametrize("crashes, delay", [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (50, 10.0)])
def test_restart_backoff_doubles_up_to_a_cap(crashes, delay):
    assert restart_delay(crashes) == delay
