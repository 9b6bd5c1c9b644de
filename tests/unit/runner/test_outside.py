"""lesson.yaml's `outside:` programs: no sidecar, a DNS name, and where the sidecars find it."""

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from minimesh.errors import ConfigError
from minimesh.runner.compose import compose_model
from minimesh.runner.plan import plan_stack
from minimesh.runner.topology import load_lesson, parse_lesson

ROOT = Path(__file__).resolve().parents[3]
LESSON = ROOT / "lessons" / "08-ingress-egress"


def test_an_outside_program_runs_without_sidecar_and_every_proxy_can_resolve_it():
    lesson = load_lesson(LESSON)
    ports = itertools.count(20000)
    plan = plan_stack(lesson, Path("/tmp/home"), 8080, lambda: next(ports))
    [rates] = [p for p in plan.workloads if p.name == "rates"]
    assert rates.role == "app" and rates.env["FAILURE_RATE"] == "0.2"
    assert not any(p.name.startswith("rates") and p.role == "sidecar" for p in plan.workloads)
    wanted = f"rates.example.com:80=127.0.0.1:{rates.env['PORT']}"
    proxies = [p for p in plan.processes if p.role in ("sidecar", "gateway")]
    assert proxies and all(p.env.get("MINIMESH_RESOLVE") == wanted for p in proxies)
    assert "MINIMESH_RESOLVE" not in plan.control.env


def test_compose_names_the_container_by_its_dns_name():
    service = compose_model(load_lesson(LESSON))["services"]["rates"]
    assert service["networks"] == {"default": {"aliases": ["rates.example.com"]}}
    assert service["environment"]["PORT"] == "80" and "HTTP_PROXY" not in service["environment"]


@pytest.mark.parametrize("outside, fragment", [
    ({"rates": {"command": ["python", "demo-services/rates.py"]}}, "outside.rates.host"),
    ({"rates": {"host": "rates", "command": ["python", "demo-services/rates.py"]}}, "DNS name"),
    ({"web": {"host": "web.example.com", "command": ["python", "demo-services/rates.py"]}}, "unique name"),
    ({"rates": {"host": "r.example.com", "command": ["python", "demo-services/rates.py"], "replicas": 2}},
     "unknown field"),
])
def test_bad_outside_entries_name_their_field(outside, fragment):
    data = {"title": "t", "services": {"web": {"versions": {"v1": {"command": ["python", "demo-services/web.py"]}}}},
            "outside": outside}
    with pytest.raises(ConfigError) as caught:
        parse_lesson(data, {}, source="lesson.yaml", lesson_dir=ROOT / "lessons" / "01-hello-mesh", cwd=ROOT)
    assert fragment in str(caught.value)


def test_the_sidecar_refuses_a_malformed_resolve_in_one_line():
    r = subprocess.run([sys.executable, "-m", "minimesh.cli", "sidecar", "--control", "http://127.0.0.1:1",
                        "--service", "a", "--instance", "a-1", "--app-port", "1", "--resolve", "rates.example.com"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "HOST:PORT=ADDRESS:PORT" in r.stderr and "Traceback" not in r.stderr
