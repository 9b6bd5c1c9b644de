"""Test helpers for whole local stacks: run the CLI as a user would, always clean up.

    with running_stack(write_lesson(tmp_path, {...}), tmp_path / "home") as stack:
        stack.status()           # `minimesh status --json`, parsed
        stack.cli("apply", f)    # any CLI command against this stack's home

Every stack gets its own MINIMESH_HOME and `--gateway-port 0`, so tests never
collide with each other or with a learner's stack on 8080; teardown always
runs `minimesh down` and then makes sure no process of that stack survives.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from minimesh.pki.operator import operator_context
from minimesh.runner.state import pid_alive, read_state
from tests.support.control import AdminProxy

REPO = Path(__file__).resolve().parents[2]

# The smallest useful manifest: every catalog request to any catalog instance.
CATALOG_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts: [catalog]
  http:
  - route:
    - destination:
        host: catalog
"""
DEMO = REPO / "demo-services"


def cli(*args: str, home: Path, timeout: float = 90, cwd: Path | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `minimesh ARGS` in a subprocess with MINIMESH_HOME=home; output captured as text."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("MINIMESH_CONTROL_URL", "MINIMESH_GATEWAY_PORT", "HTTP_PROXY", "http_proxy")}
    full_env.update({"MINIMESH_HOME": str(home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "minimesh.cli", *args], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def write_lesson(directory: Path, services: dict[str, dict], *, gateway: str | None = None,
                 title: str = "Test lesson", manifests: list[str] | None = None) -> Path:
    """Write lesson.yaml; `services` maps service → {version: spec}, e.g.
    {"catalog": {"v1": {"command": ["python", str(DEMO / "catalog.py")], "replicas": 2}}}.
    The lesson starts with gateway.yaml, a Gateway + VirtualService as the lessons ship: each
    service by name, any other Host to `gateway` (the first service when not given)."""
    from tests.support.mesh import ingress

    directory.mkdir(parents=True, exist_ok=True)
    doc = {"title": title, "services": {s: {"versions": v} for s, v in services.items()}}
    (directory / "gateway.yaml").write_text(yaml.safe_dump_all(ingress(gateway or next(iter(services)),
                                                                       tuple(services)), sort_keys=False))
    doc["manifests"] = ["gateway.yaml", *(manifests or [])]
    (directory / "lesson.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


def own_resources(stack_cli_result) -> list[dict]:
    """`minimesh get -o json`'s resources, less the way in that write_lesson adds (the `ingress` Gateway + VS)."""
    import json

    return [r for r in json.loads(stack_cli_result.stdout)["resources"] if r["metadata"]["name"] != "ingress"]


def demo(name: str, **spec) -> dict:
    """A version spec running one of the demo services."""
    return {"command": ["python", str(DEMO / f"{name}.py")], **spec}


def wait_for(condition, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    """Poll `condition()` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Stack:
    lesson: Path
    home: Path
    up_result: subprocess.CompletedProcess
    _proxy: AdminProxy | None = None

    def admin_url(self) -> str:
        """Plain HTTP to this stack's control plane, as the admin (an admin proxy, see control.py)."""
        if self._proxy is None:
            url = self.status()["control_url"]
            self._proxy = AdminProxy(lambda: url, lambda: operator_context("admin", self.home))
        return self._proxy.url

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()

    def cli(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return cli(*args, home=self.home, **kwargs)

    def status(self) -> dict:
        r = self.cli("status", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def state(self) -> dict | None:
        return read_state(self.home)

    def all_pids(self) -> list[int]:
        state = self.state() or {}
        return [state.get("supervisor_pid")] + [p["pid"] for p in state.get("processes", {}).values()]


def start_stack(lesson: Path, home: Path) -> Stack:
    r = cli("up", str(lesson), "--detach", "--gateway-port", "0", home=home)
    assert r.returncode == 0, f"up failed: {r.stderr}\n{_logs(home)}"
    return Stack(lesson, home, r)


def stop_stack(home: Path, pids: list[int]) -> None:
    """`minimesh down`, then SIGKILL anything of the stack that is somehow still alive."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        cli("down", home=home, timeout=60)
    for pid in pids:
        if pid and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_stack(lesson: Path, home: Path):
    stack = start_stack(lesson, home)
    pids = stack.all_pids()
    try:
        yield stack
    finally:
        stack.close()
        stop_stack(home, pids + stack.all_pids())


def _logs(home: Path, tail: int = 15) -> str:
    out = []
    for log in sorted((home / "logs").glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-tail:]
        out.append(f"--- {log.name}\n" + "\n".join(lines))
    return "\n".join(out)
