"""The things under test, each started on loopback and torn down after its turn.

    direct     client ─────────────────────────────────────────▶ app
    haproxy    client ─▶ haproxy "outbound" ─▶ haproxy "inbound" ─▶ app
    relay      client ─▶ bench.relay "outbound" ─▶ bench.relay "inbound" ─▶ app
                         (a bare Python L7 relay: the ceiling of a Python proxy here)
    minimesh   client ─▶ outbound sidecar ──▶ inbound sidecar ───▶ app
                         (a real control plane tells the outbound sidecar
                          where service `bench` lives)

The client speaks to the first hop with `Host: bench`, so the outbound
sidecar routes it exactly as it routes an app's `http://bench/` through
HTTP_PROXY (an origin-form request names its service in Host; absolute form
takes the same path once parsed). Every server process — app, proxies,
— is pinned to the server cores, the load generator to the others, so the
client never steals CPU from what it measures. The control plane is off the
request path and runs beside the load generator, as it would run on another
node of a real mesh (its CPU is still measured and reported).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICE = "bench"  # the mesh service name of the upstream app
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Mesh-wide DISABLE: the plaintext pair stays plaintext although both sidecars hold certificates.
DISABLE = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
           "metadata": {"name": "default", "namespace": "default"}, "spec": {"mtls": {"mode": "DISABLE"}}}


@dataclass(frozen=True)
class Configuration:
    """One way of putting a network path between the client and the app."""
    name: str
    kind: str                      # direct | haproxy | relay | minimesh
    description: str
    mtls: bool = False
    telemetry: bool = True
    sidecar_args: tuple[str, ...] = ()   # extra `minimesh sidecar` options (e.g. telemetry off)
    manifests: tuple[dict, ...] = ()     # applied to the control plane before the sidecars start


@dataclass
class Target:
    """A running configuration: where the client sends, and which processes are the proxies."""
    port: int
    host_header: str
    proxies: dict[str, int] = field(default_factory=dict)  # role ("outbound"/"inbound") -> pid
    helpers: dict[str, int] = field(default_factory=dict)  # other processes on the path's cores (control plane)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _opener(url: str, home: Path | None):
    """Plain for http://; for an https:// control plane, the admin's certificate from its home."""
    if home is None or not url.startswith("https://"):
        return NO_PROXY
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(home / "credentials" / "ca.pem")
    ctx.load_cert_chain(home / "credentials" / "admin.pem")
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))


def get_json(url: str, timeout: float = 2.0, home: Path | None = None):
    try:
        with _opener(url, home).open(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def post_json(url: str, body: dict, home: Path | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with _opener(url, home).open(req, timeout=10) as resp:
        return json.loads(resp.read())


def minimesh_command() -> list[str]:
    script = Path(sys.executable).with_name("minimesh")
    return [str(script)] if script.exists() else [sys.executable, "-m", "minimesh.cli"]


class Processes:
    """Starts pinned child processes and stops every one of them, in reverse order."""

    def __init__(self, logs: Path, cores: set[int]):
        self.logs, self.cores = logs, cores
        self.children: list[subprocess.Popen] = []
        logs.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, cmd: list[str], env: dict | None = None, stdout=None,
              cores: set[int] | None = None) -> subprocess.Popen:
        cores = cores or self.cores
        clean = {k: v for k, v in os.environ.items()
                 if k.lower() not in ("http_proxy", "https_proxy", "all_proxy") and not k.startswith("MINIMESH_")}
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, stdout=stdout or log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO,
                                env={**clean, **(env or {})},
                                preexec_fn=lambda: os.sched_setaffinity(0, cores))
        log.close()
        self.children.append(proc)
        return proc

    def alive(self, proc: subprocess.Popen) -> bool:
        """True while `proc` runs; a process that died says why, from its log."""
        if proc.poll() is None:
            return True
        name = Path(proc.args[0]).name
        logs = sorted(self.logs.glob("*.log"), key=lambda p: p.stat().st_mtime)
        tail = logs[-1].read_text(errors="replace").strip().splitlines()[-3:] if logs else []
        raise RuntimeError(f"{name} exited with {proc.returncode}: " + " | ".join(tail))

    def stop_all(self) -> None:
        for proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.children):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()


def start_upstream(procs: Processes) -> int:
    proc = procs.spawn("upstream", [sys.executable, "-m", "bench.upstream", "--port", "0"], stdout=subprocess.PIPE)
    line = proc.stdout.readline().decode()
    if not line.startswith("listening on "):
        raise RuntimeError(f"the bench upstream did not start (see {procs.logs}/upstream.log)")
    return int(line.split()[-1])


@contextlib.contextmanager
def running(config: Configuration, app_port: int, procs: Processes):
    """Start `config` in front of the app on `app_port`; yield its Target; stop it afterwards."""
    starters = {"direct": _direct, "haproxy": _haproxy, "relay": _relay, "minimesh": _minimesh}
    try:
        yield starters[config.kind](config, app_port, procs)
    finally:
        procs.stop_all()


def _direct(config, app_port, procs) -> Target:
    return Target(app_port, SERVICE)


HAPROXY_CFG = """\
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend {role}
    bind 127.0.0.1:{port}
    default_backend next
backend next
    server next 127.0.0.1:{upstream}
"""


def _haproxy(config, app_port, procs) -> Target:
    """Two single-threaded HAProxy processes, wired like the sidecar pair."""
    haproxy = shutil.which("haproxy")
    inbound, outbound = free_port(), free_port()
    pids = {}
    for role, port, upstream in (("inbound", inbound, app_port), ("outbound", outbound, inbound)):
        cfg = procs.logs / f"haproxy-{role}.cfg"
        cfg.write_text(HAPROXY_CFG.format(role=role, port=port, upstream=upstream))
        proc = procs.spawn(f"haproxy-{role}", [haproxy, "-db", "-f", str(cfg)])
        pids[role] = proc.pid
        wait_until(lambda: procs.alive(proc) and port_open(port), 10, f"haproxy {role} on port {port}")
    return Target(outbound, SERVICE, pids)


def _relay(config, app_port, procs) -> Target:
    """Two bench.relay processes, wired like the sidecar pair; mutual TLS between them if `config.mtls`."""
    from bench.relay import write_credentials
    tls_dir = procs.logs / f"tls-{config.name}"
    if config.mtls:
        write_credentials(tls_dir)
    pids, upstream = {}, app_port
    for role, tls in (("inbound", "server"), ("outbound", "client")):
        cmd = [sys.executable, "-m", "bench.relay", "--port", "0", "--upstream", str(upstream)]
        if config.mtls:
            cmd += ["--tls", tls, "--tls-dir", str(tls_dir)]
        proc = procs.spawn(f"{config.name}-{role}", cmd, stdout=subprocess.PIPE)
        line = proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the {role} relay did not start (see {procs.logs}/{config.name}-{role}.log)")
        pids[role], upstream = proc.pid, int(line.split()[-1])
    return Target(upstream, SERVICE, pids)


def _minimesh(config, app_port, procs) -> Target:
    """A real control plane, then the callee's sidecar (inbound) and the caller's (outbound)."""
    home = procs.logs / f"home-{config.name}"
    shutil.rmtree(home, ignore_errors=True)
    # The control plane is off the request path (in a real mesh it runs on
    # another node), so it does not share the proxies' cores: its telemetry
    # ingestion must not be charged to the sidecar pair's throughput.
    off_path = set(range(os.cpu_count() or 1)) - procs.cores or procs.cores
    control_proc = procs.spawn(f"{config.name}-control",
                               [*minimesh_command(), "control", "--port", "0", "--home", str(home)],
                               env={"MINIMESH_CONTROL_WARMUP": "0"}, cores=off_path)
    url_file = home / "control" / "url"
    control = wait_until(lambda: url_file.is_file() and url_file.read_text().strip(), 15, "the control plane's url")
    wait_until(lambda: get_json(f"{control}/healthz", home=home), 15, "the control plane's /healthz")
    # A control plane over mTLS (every checkout since it has one) admits only sidecars with a
    # certificate: both get a join token, and every plaintext pair is told so with DISABLE —
    # also one that brings manifests of its own (minimesh-authz), or auto mTLS would
    # quietly make it an mTLS pair (the fifth run's "authz costs 20 %" was that handshake's cost).
    authenticated = control.startswith("https://")
    manifests = [*config.manifests, *([] if config.mtls or not authenticated else [DISABLE])]
    if manifests:
        post_json(f"{control}/v1/config", {"manifests": manifests, "source": f"bench {config.name}"}, home=home)

    def sidecar(role: str, service: str, instance: str, app: int) -> int:
        cmd = [*minimesh_command(), "sidecar", "--control", control, "--service", service,
               "--instance", instance, "--app-port", str(app), "--inbound-port", "0",
               "--outbound-port", "0", "--admin-port", "0", *config.sidecar_args]
        if config.mtls or authenticated:  # a join token gives the sidecar its identity, hence its certificate
            cmd += ["--token", join_token(home, service)]
        if authenticated:
            cmd += ["--control-ca", str(home / "credentials" / "ca.pem")]
        return procs.spawn(f"{config.name}-{role}", cmd)

    sidecars = [sidecar("inbound", SERVICE, "bench-0", app_port),
                # The caller's own app is never called in the bench; its sidecar still needs a port for it.
                sidecar("outbound", "loadgen", "loadgen-0", free_port())]
    pids = {"inbound": sidecars[0].pid, "outbound": sidecars[1].pid}

    def registered():
        all(procs.alive(p) for p in sidecars)
        found = {i["instance"]: i for i in (get_json(f"{control}/v1/instances", home=home) or {}).get("instances", [])}
        return found if {"bench-0", "loadgen-0"} <= found.keys() else None

    instances = wait_until(registered, 20, "both sidecars to register")
    admin = instances["loadgen-0"]["addresses"]["admin"]

    def knows_bench():
        dump = get_json(f"http://{admin}/config_dump") or {}
        services = (dump.get("snapshot") or {}).get("services", {})
        return services.get(SERVICE, {}).get("endpoints")

    wait_until(knows_bench, 20, "the outbound sidecar to learn service bench's endpoint")
    outbound_port = int(instances["loadgen-0"]["addresses"]["outbound"].rsplit(":", 1)[1])
    if config.telemetry:  # what the inbound counts is what the pair speaks: check it is what the row claims
        inbound_admin = instances["bench-0"]["addresses"]["admin"]
        security = "mutual_tls" if config.mtls else "none"
        wait_until(lambda: arrives_as(security, outbound_port, inbound_admin), 20,
                   f"a request to arrive with connection_security_policy {security}")
    return Target(outbound_port, SERVICE, pids, {"control": control_proc.pid})


def join_token(home: Path, service: str) -> str:
    out = subprocess.run([*minimesh_command(), "token", service, "--home", str(home)],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def arrives_as(security: str, outbound_port: int, inbound_admin: str) -> bool:
    """Send one request through the pair; True once the inbound sidecar counts one with `security`."""
    req = urllib.request.Request(f"http://127.0.0.1:{outbound_port}/", headers={"Host": SERVICE})
    with contextlib.suppress(OSError), NO_PROXY.open(req, timeout=5):
        pass
    try:
        with NO_PROXY.open(f"http://{inbound_admin}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
    except OSError:
        return False
    return any(f'connection_security_policy="{security}"' in line and line.startswith("minimesh_requests_total")
               and not line.rstrip().endswith(" 0.0") for line in metrics.splitlines())
