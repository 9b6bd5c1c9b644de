"""The stack plan: every process a lesson needs, with its command line and ports.

Turning a Lesson into processes is a pure decision — no process is started
here — so it can be read top to bottom and tested without sockets:

    control plane        python -m minimesh.cli control --port P --home H
    for every instance:  the app (PORT, SERVICE, VERSION, INSTANCE, HTTP_PROXY)
                         and its sidecar (inbound → app, outbound ← app, admin)
    gateway              a sidecar in gateway mode on the public port
    outside programs     the lesson's `outside:` apps, with no sidecar; every
                         proxy gets MINIMESH_RESOLVE ("rates.example.com:80=
                         127.0.0.1:P"), the local stand-in for the DNS name
                         Docker Compose gives their containers

Each process also says how we know it is ready: the control plane and the
proxies answer HTTP (`/healthz`, `/ready`), while an app is any program, so a
TCP connect to its PORT is enough.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

from minimesh.pki.spiffe import GATEWAY_ACCOUNT, account_key
from minimesh.runner.topology import LESSON_TELEMETRY, Lesson

HOST = "127.0.0.1"
MESH = (sys.executable, "-m", "minimesh.cli")


@dataclass(frozen=True)
class Probe:
    """How to tell a process is ready: an HTTP GET answering 200, or a TCP connect."""

    port: int
    path: str | None = None  # None: TCP connect is enough
    tls: bool = False  # the control plane: HTTPS only

    def describe(self) -> str:
        where = f"{HOST}:{self.port}"
        return f"GET {'https' if self.tls else 'http'}://{where}{self.path}" if self.path else f"TCP {where}"


@dataclass(frozen=True)
class ProcessSpec:
    name: str                 # also the log file name: logs/<name>.log
    role: str                 # control | app | sidecar | gateway
    argv: tuple[str, ...]
    probe: Probe
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's environment
    instance: str | None = None
    ports: tuple[int, ...] = ()  # every port it listens on (so `down` can check they closed)


@dataclass(frozen=True)
class InstancePlan:
    service: str
    version: str
    instance: str
    app_port: int
    inbound_port: int
    outbound_port: int
    admin_port: int


@dataclass(frozen=True)
class StackPlan:
    control_url: str
    gateway_url: str
    gateway_https_url: str  # the gateway's HTTPS port: Gateway servers on 443 (TLS terminated there)
    control: ProcessSpec
    gateway: ProcessSpec
    instances: tuple[InstancePlan, ...]
    workloads: tuple[ProcessSpec, ...]  # apps and sidecars, in instance order

    @property
    def processes(self) -> tuple[ProcessSpec, ...]:
        return (self.control, *self.workloads, self.gateway)


def plan_stack(lesson: Lesson, home: Path, gateway_port: int, next_port, token_for=None,
               cert_ttl: str | None = None, https_port: int | None = None) -> StackPlan:
    """Decide every process and port; `next_port()` hands out a free port.

    `token_for(service)` gives each proxy its join token, passed in the
    environment (MINIMESH_JOIN_TOKEN) rather than on a command line anyone can
    read with `ps`; `cert_ttl` is the control plane's `--cert-ttl`.
    """
    token_env = (lambda service: {"MINIMESH_JOIN_TOKEN": token_for(service)}) if token_for else (lambda s: {})
    control_port = next_port()
    control_url = f"https://{HOST}:{control_port}"
    control = ProcessSpec(
        name="control", role="control",
        argv=(*MESH, "control", "--host", HOST, "--port", str(control_port), "--home", str(home),
              *(("--cert-ttl", cert_ttl) if cert_ttl else ())),
        probe=Probe(control_port, "/healthz", tls=True), ports=(control_port,),
        env={"MINIMESH_LESSON": lesson.dir.name})  # `minimesh lesson check` of another lesson says so

    instances, workloads = [], []
    resolve = []
    for out in lesson.outside:
        port = next_port()
        resolve.append(f"{out.host}:80={HOST}:{port}")
        workloads.append(ProcessSpec(
            name=out.name, role="app", argv=out.spec.command, probe=Probe(port), ports=(port,),
            env={**out.spec.env, "PORT": str(port), "SERVICE": out.name, "VERSION": "v1", "INSTANCE": out.name}))
    if resolve:
        resolve_env = {"MINIMESH_RESOLVE": ",".join(resolve)}
        token_env = (lambda given: lambda service: {**given(service), **resolve_env})(token_env)
    for inst in lesson.instances():
        ip = InstancePlan(inst.service, inst.version, inst.name,
                          app_port=next_port(), inbound_port=next_port(),
                          outbound_port=next_port(), admin_port=next_port())
        instances.append(ip)
        env = {**inst.spec.env,
               "PORT": str(ip.app_port), "SERVICE": inst.service, "VERSION": inst.version,
               "INSTANCE": inst.name,
               # Both spellings: many HTTP clients prefer the lower-case one when both are set.
               "HTTP_PROXY": f"http://{HOST}:{ip.outbound_port}",
               "http_proxy": f"http://{HOST}:{ip.outbound_port}"}
        workloads.append(ProcessSpec(
            name=inst.name, role="app", argv=inst.spec.command, env=env,
            probe=Probe(ip.app_port), instance=inst.name, ports=(ip.app_port,)))
        labels = [arg for k, v in inst.spec.labels.items() for arg in ("--label", f"{k}={v}")]
        workloads.append(ProcessSpec(
            name=f"{inst.name}.sidecar", role="sidecar",
            argv=(*MESH, "sidecar", "--control", control_url, "--service", inst.service,
                  *(("--namespace", inst.spec.namespace) if inst.spec.namespace != "default" else ()),
                  "--version", inst.version, "--instance", inst.name, *labels,
                  "--app-port", str(ip.app_port), "--inbound-port", str(ip.inbound_port),
                  "--outbound-port", str(ip.outbound_port), "--admin-port", str(ip.admin_port),
                  *LESSON_TELEMETRY),
            env=token_env(account_key(inst.spec.namespace, inst.service)), probe=Probe(ip.admin_port, "/ready"), instance=inst.name,
            ports=(ip.inbound_port, ip.outbound_port, ip.admin_port)))

    gateway_admin = next_port()
    https_port = https_port or next_port()
    gateway = ProcessSpec(
        name="gateway", role="gateway",
        argv=(*MESH, "sidecar", "--gateway", "--service", "gateway", "--instance", "gateway",
              "--listen-port", str(gateway_port), "--tls-listen-port", str(https_port),
              "--admin-port", str(gateway_admin),
              "--control", control_url, *LESSON_TELEMETRY),
        env=token_env(GATEWAY_ACCOUNT), probe=Probe(gateway_admin, "/ready"), instance="gateway",
        ports=(gateway_port, https_port, gateway_admin))

    return StackPlan(control_url=control_url, gateway_url=f"http://{HOST}:{gateway_port}",
                     gateway_https_url=f"https://{HOST}:{https_port}",
                     control=control, gateway=gateway, instances=tuple(instances),
                     workloads=tuple(workloads))
