"""Builders for data-plane integration tests: real `minimesh sidecar` processes, and whole meshes.

    async with run_sidecar(cp.url, "catalog", app_port) as sidecar:
        sidecar.outbound, sidecar.inbound, sidecar.admin   # http://127.0.0.1:<port>
        sidecar.access_log()                               # the JSON access-log lines so far

    async with run_mesh(tmp_path) as mesh:                 # a control plane in tmp_path
        web = await mesh.add("web")                        # app + its sidecar, HTTP_PROXY wired
        await mesh.add("catalog", env={"DELAY_MS": "200"}, replicas=2)
        gateway = await mesh.add_gateway(default_service="web")   # + a Gateway and bound VirtualService
        await mesh.converged()                             # every proxy ACKed the newest snapshot
        async with mesh.client() as http: ...              # an aiohttp session that ignores HTTP_PROXY

Like uvicorn's `run_server` helper: start the process on free ports (a port
grabbed by someone else between our pick and the bind means a retry with new
ones), wait for the admin `/ready` with a deadline, and stop with SIGTERM
afterwards, checking that the process exits 0 — a sidecar that cannot shut
down cleanly is a failure, not noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from minimesh.pki.spiffe import GATEWAY_ACCOUNT, account_key
from minimesh.runner.topology import LESSON_TELEMETRY
from tests.support.control import ControlPlaneProcess, control_plane_at, minimesh_command, wait_for
from tests.support.manifests import ingress
from tests.support.shop import SHOP_ENV, ServiceHandle, astart_service, free_port

READY_DEADLINE = 15.0


def client_session(**kwargs) -> aiohttp.ClientSession:
    """An aiohttp session for tests: never uses the machine's proxy settings."""
    return aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=15), **kwargs)


class SidecarFailedToStart(RuntimeError):
    pass


class SidecarProcess:
    """A running `minimesh sidecar`: URLs of its listeners, `.proc`, `.logs()`, `.stop()`."""

    def __init__(self, control_url: str, service: str, app_port: int | None, version: str, instance: str,
                 gateway: bool, default_service: str | None, log_path: Path,
                 telemetry_args: tuple[str, ...] = LESSON_TELEMETRY, extra_args: tuple[str, ...] = (),
                 namespace: str = "default"):
        self.control_url, self.service, self.app_port = control_url, service, app_port
        self.namespace = namespace
        # The lessons' telemetry by default: the tests read every access-log line and trace.
        self.telemetry_args = telemetry_args
        self.extra_args = extra_args  # e.g. ("--header-timeout", "1")
        self.version, self.instance = version, instance
        self.gateway, self.default_service = gateway, default_service
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        # A control plane the builders started: the sidecar gets its real (HTTPS) address,
        # its service's join token and the CA to verify it by — what the runner hands a sidecar.
        cp = control_plane_at(control_url)
        account = GATEWAY_ACCOUNT if gateway else account_key(namespace, service)
        self.token: str | None = cp.token(account) if cp is not None else None
        self.control_ca: Path | None = cp.ca_file if cp is not None else None
        if cp is not None:
            self.control_url = cp.https_url

    # --- addresses -------------------------------------------------------------------------
    def _url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}" if name in self.ports else ""

    @property
    def inbound(self) -> str:
        return self._url("inbound")

    @property
    def outbound(self) -> str:
        return self._url("outbound")

    @property
    def admin(self) -> str:
        return self._url("admin")

    @property
    def listen(self) -> str:
        """The gateway's public listener."""
        return self._url("listen")

    @property
    def tls_port(self) -> int:
        """The gateway's HTTPS listener (Gateway servers on port 443): speak TLS to 127.0.0.1 here."""
        return self.ports["tls"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    # --- process ---------------------------------------------------------------------------
    def _command(self) -> list[str]:
        cmd = [*minimesh_command(), "sidecar", "--control", self.control_url, "--service", self.service,
               "--version", self.version, "--instance", self.instance, "--admin-port", str(self.ports["admin"]),
               *self.telemetry_args, *self.extra_args]
        if self.namespace != "default":
            cmd += ["--namespace", self.namespace]
        if self.control_ca is not None:
            cmd += ["--control-ca", str(self.control_ca)]
        if self.token:
            cmd += ["--token", self.token]
        if self.gateway:
            cmd += ["--gateway", "--listen-port", str(self.ports["listen"]), "--tls-listen-port", str(self.ports["tls"])]
        else:
            cmd += ["--app-port", str(self.app_port), "--inbound-port", str(self.ports["inbound"]),
                    "--outbound-port", str(self.ports["outbound"])]
        return cmd

    async def start(self, deadline_s: float = READY_DEADLINE, attempts: int = 3) -> "SidecarProcess":
        names = ("listen", "tls", "admin") if self.gateway else ("outbound", "inbound", "admin")
        for attempt in range(attempts):
            self.ports = {name: free_port() for name in names}
            self._spawn()
            try:
                await wait_for(self._ready, deadline_s, what=f"sidecar {self.instance} /ready")
                return self
            except SidecarFailedToStart:
                if attempt + 1 < attempts and "already in use" in self.logs():
                    self.log_path.write_bytes(b"")
                    continue
                raise
        raise AssertionError("unreachable")

    async def restart(self, deadline_s: float = READY_DEADLINE) -> "SidecarProcess":
        """Start it again after `stop()`, on the same ports: the same instance back on the same address."""
        assert self.proc is not None and self.proc.poll() is not None, f"sidecar {self.instance} is still running"
        self._spawn()
        await wait_for(self._ready, deadline_s, what=f"sidecar {self.instance} /ready after its restart")
        return self

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SHOP_ENV and k != "MINIMESH_CONTROL_URL"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env={**env, "PYTHONUNBUFFERED": "1"})

    async def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise SidecarFailedToStart(f"sidecar {self.instance} exited with {self.proc.returncode}:\n{self.logs()}")
        try:
            async with client_session() as s, s.get(self.admin + "/ready") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def access_log(self) -> list[dict]:
        """Every access-log line (minimesh.access) written so far, parsed."""
        lines = []
        for line in self.logs().splitlines():
            head, sep, payload = line.partition("minimesh.access: ")
            if sep:
                lines.append(json.loads(payload))
        return lines

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    async def get_json(self, path: str) -> dict:
        async with client_session() as s, s.get(self.admin + path) as r:
            return await r.json()

    async def stats(self) -> dict:
        return await self.get_json("/stats")

    async def config_dump(self) -> dict:
        return await self.get_json("/config_dump")

    async def healthy(self) -> bool:
        return self.proc.poll() is None and await self._ready()

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code (the builder asserts it is 0)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 5)
                raise AssertionError(f"sidecar {self.instance} ignored SIGTERM for {timeout}s:\n{self.logs()}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


_counter = itertools.count()


def _log_file(instance: str, log_dir: Path | None) -> Path:
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        return Path(log_dir) / f"{instance}.log"
    fd, path = tempfile.mkstemp(prefix=f"sidecar-{instance}-", suffix=".log")
    os.close(fd)
    return Path(path)


async def start_sidecar(control_url: str, service: str, app_port: int | None = None, version: str = "v1",
                        instance: str | None = None, gateway: bool = False, default_service: str | None = None,
                        log_dir: Path | None = None, telemetry_args: tuple[str, ...] = LESSON_TELEMETRY,
                        extra_args: tuple[str, ...] = (), namespace: str = "default") -> SidecarProcess:
    """Start a sidecar (or, with gateway=True, the gateway) and return once /ready answers 200."""
    instance = instance or f"{service}-{version}-{os.getpid()}-{next(_counter)}"
    sidecar = SidecarProcess(control_url, service, app_port, version, instance, gateway, default_service,
                             _log_file(instance, log_dir), telemetry_args, extra_args, namespace)
    try:
        return await sidecar.start()
    except BaseException:
        sidecar.kill()
        print(f"----- sidecar {instance} -----\n{sidecar.logs()}")
        raise


@contextlib.asynccontextmanager
async def run_sidecar(control_url: str, service: str, app_port: int | None = None, version: str = "v1",
                      instance: str | None = None, gateway: bool = False, default_service: str | None = None,
                      log_dir: Path | None = None, telemetry_args: tuple[str, ...] = LESSON_TELEMETRY):
    """`start_sidecar` as a context manager: SIGTERM on exit, and the exit code must be 0."""
    sidecar = await start_sidecar(control_url, service, app_port, version, instance, gateway, default_service,
                                  log_dir, telemetry_args)
    try:
        yield sidecar
    finally:
        code = await sidecar.stop()
        print(f"----- sidecar {sidecar.instance} (exit {code}) -----\n{sidecar.logs()}")
    assert code == 0, f"sidecar {sidecar.instance} exited with {code}"


# --- a whole mesh ------------------------------------------------------------------------------


@dataclass
class Instance:
    """One meshed app instance: the demo service and its sidecar."""

    service: str
    version: str
    name: str
    app: ServiceHandle | None
    sidecar: SidecarProcess


class Mesh:
    """A control plane plus demo services with sidecars, and a gateway; everything is stopped on close."""

    def __init__(self, control: ControlPlaneProcess, log_dir: Path):
        self.control = control
        self.log_dir = log_dir
        self.instances: list[Instance] = []
        self.gateway: SidecarProcess | None = None
        self._numbers = itertools.count()

    @property
    def control_url(self) -> str:
        return self.control.url

    async def add(self, service: str, version: str = "v1", env: dict | None = None, replicas: int = 1,
                  namespace: str = "default") -> Instance | list[Instance]:
        """Start `replicas` instances of demo-services/<service>.py, each beside its own sidecar."""
        started = await asyncio.gather(*(self._add_one(service, version, env or {}, namespace=namespace)
                                         for _ in range(replicas)))
        return started[0] if replicas == 1 else list(started)

    async def _add_one(self, service: str, version: str, env: dict, namespace: str = "default") -> Instance:
        name = f"{service}-{version}-{next(self._numbers)}"
        app_port = free_port()
        # The sidecar first: its outbound port is the app's HTTP_PROXY.
        sidecar = await start_sidecar(self.control_url, service, app_port, version, name, log_dir=self.log_dir,
                                      namespace=namespace)
        instance = Instance(service, version, name, None, sidecar)
        self.instances.append(instance)
        instance.app = await astart_service(service, {"SERVICE": service, "VERSION": version, "INSTANCE": name,
                                                      "HTTP_PROXY": sidecar.outbound, **env}, port=app_port)
        return instance

    async def add_gateway(self, default_service: str | None = "web") -> SidecarProcess:
        """The ingress gateway; with `default_service`, also `ingress(default_service)` applied."""
        self.gateway = await start_sidecar(self.control_url, "gateway", gateway=True, instance="gateway",
                                           log_dir=self.log_dir)
        if default_service:
            await self.apply(*ingress(default_service))
        return self.gateway

    def proxies(self) -> list[SidecarProcess]:
        alive = [i.sidecar for i in self.instances if i.sidecar.proc.poll() is None]
        return alive + ([self.gateway] if self.gateway and self.gateway.proc.poll() is None else [])

    async def cp(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        async with client_session() as s, s.request(method, self.control_url + path, json=body) as r:
            return r.status, (await r.json() if r.status != 204 else None)

    async def apply(self, *manifests: dict, converge: bool = True) -> int:
        """POST /v1/config; returns the new config version once every proxy runs it."""
        status, body = await self.cp("POST", "/v1/config", {"manifests": list(manifests), "source": "test"})
        assert status == 200, body
        if converge:
            await self.converged(config_version=body["version"])
        return body["version"]

    async def converged(self, config_version: int | None = None, deadline_s: float = 15.0) -> None:
        """Wait until every live proxy holds the control plane's current snapshot."""
        async def done():
            status, body = await self.cp("GET", "/v1/status")
            if status != 200 or (config_version is not None and body["config_version"] != config_version):
                return False
            for proxy in self.proxies():
                dump = await proxy.config_dump()
                if dump["version"] != body["snapshot_version"]:
                    return False
            return True
        await wait_for(done, deadline_s, interval=0.1, what="every proxy to hold the newest snapshot")

    def client(self) -> aiohttp.ClientSession:
        return client_session()

    async def close(self) -> dict[str, int]:
        """Stop sidecars (SIGTERM) and apps; returns each sidecar's exit code."""
        codes = {}
        proxies = [i.sidecar for i in self.instances] + ([self.gateway] if self.gateway else [])
        results = await asyncio.gather(*(p.stop() for p in proxies), return_exceptions=True)
        for proxy, code in zip(proxies, results):
            codes[proxy.instance] = code
        for instance in self.instances:
            if instance.app is not None:
                instance.app.stop(echo_logs=False)
        return codes

    def dump_logs(self) -> None:
        for proxy in [i.sidecar for i in self.instances] + ([self.gateway] if self.gateway else []):
            print(f"----- sidecar {proxy.instance} -----\n{proxy.logs()[-20000:]}")
        print(f"----- control plane -----\n{self.control.logs()[-20000:]}")


@contextlib.asynccontextmanager
async def run_mesh(home: Path, ttl: float = 10.0, warmup: float = 0.0, fixed_port: bool = False):
    """A control plane in `home` (on a fixed free port when it must survive a restart) and a Mesh on it.

    On exit every sidecar is SIGTERMed and must exit 0; on failure the logs are printed.
    """
    home = Path(home)
    control = ControlPlaneProcess(home, ttl, warmup, port=free_port() if fixed_port else 0)
    await control.start()
    async with serving(Mesh(control, home / "logs"), control) as mesh:
        yield mesh


@contextlib.asynccontextmanager
async def serving(mesh, control):
    """Yield `mesh`; then stop every sidecar and the control plane, and require clean exits."""
    ok = False
    try:
        yield mesh
        ok = True
    finally:
        started = time.monotonic()
        codes = await mesh.close()
        control.stop()
        bad = {name: code for name, code in codes.items() if code != 0}
        if bad or not ok:
            mesh.dump_logs()
        if ok:
            assert not bad, f"sidecars did not exit 0 on SIGTERM: {bad} (after {time.monotonic() - started:.1f}s)"


async def set_fault(instance: Instance, **knobs) -> None:
    """Change a demo app's fault knobs at run time (failure_rate, delay_ms): PUT /_fault."""
    async with client_session() as http, http.put(instance.app.url + "/_fault", json=knobs) as r:
        assert r.status == 200, await r.text()
