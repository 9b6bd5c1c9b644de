"""A sidecar process: its listeners, its control-plane client, and its shutdown.

    outbound  the app's HTTP_PROXY: the outbound journey (outbound.py)
    inbound   in front of the app: the inbound journey (inbound.py)
    admin     /ready, /config_dump, /stats, /certs, /metrics (admin.py)

In gateway mode there are public listeners instead of the first two
(gateway.py): HTTP, and HTTPS when given a TLS port (gateway_tls.py). On SIGTERM the sidecar leaves the registry first, so callers
stop picking it, then lets in-flight requests finish before it exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from dataclasses import dataclass, field

from minimesh.config.resource import ROOT_NAMESPACE
from minimesh.errors import UserError
from minimesh.pki.spiffe import GATEWAY_ACCOUNT, account_key, reporter_of
from minimesh.proxy.admin import Admin
from minimesh.proxy.outbound.balancer import InFlight
from minimesh.proxy.outbound.breaker import Breakers
from minimesh.proxy.outbound.outlier import Outliers
from minimesh.proxy.control_channel import ControlChannel
from minimesh.proxy.discovery import ConfigHolder, ControlPlaneClient
from minimesh.proxy.edge import Edge
from minimesh.proxy.inbound.authz import Workload
from minimesh.config.gateway import HTTPS_PORT
from minimesh.proxy.gateway import GATEWAY_LABELS, GatewayRouter
from minimesh.proxy.gateway_tls import GatewayTLS, server_of
from minimesh.proxy.inbound.stack import InboundRouter
from minimesh.proxy.inbound.jwks import JwksCache
from minimesh.proxy.identity import WorkloadIdentity
from minimesh.proxy.transport.limits import Limits
from minimesh.proxy.transport.listener import Listener
from minimesh.proxy.transport.loop_guard import LoopGuard
from minimesh.proxy.observe.metrics import MeshMetrics
from minimesh.proxy.mtls import AutoMTLS, InboundSecurity
from minimesh.proxy.outbound.stack import OutboundRouter
from minimesh.proxy.transport.pool import UpstreamPool
from minimesh.proxy.observe.stats import Stats
from minimesh.proxy.observe.export import TelemetryExporter
from minimesh.proxy.observe.telemetry import AccessLog, RequestTelemetry, telemetry_enabled

log = logging.getLogger("minimesh.proxy")

DRAIN_GRACE = 1.0  # seconds between leaving the registry and closing listeners


@dataclass
class SidecarOptions:
    control_url: str
    service: str
    instance: str
    version: str = "v1"
    namespace: str = "default"  # a gateway always runs in istio-system, as Istio's ingress gateway
    labels: dict = field(default_factory=dict)
    host: str = "127.0.0.1"
    app_port: int | None = None
    inbound_port: int = 15006
    outbound_port: int = 15001
    admin_port: int = 15000
    gateway: bool = False
    listen_port: int = 8080
    tls_listen_port: int | None = None  # gateway: the HTTPS port (Gateway servers on 443); None: not opened
    advertise_host: str = "127.0.0.1"
    token: str | None = None  # join token: with one, a certificate and mTLS; without, plaintext only
    control_ca: str | None = None  # PEM file of the mesh CA, to verify an https:// control plane by
    # Traces, metrics, access log, events to the control plane; off with
    # MINIMESH_TELEMETRY=off or `--no-telemetry` (for the benchmark's on-vs-off).
    telemetry: bool = field(default_factory=telemetry_enabled)
    access_log: bool = False  # a JSON line per request (Istio's default profile: off; its demo profile and lessons: on)
    trace_sampling: float = 0.01  # share of new traces recorded (Istio's default: 1 %; lessons: all)
    limits: Limits = field(default_factory=Limits)  # header sizes, timeouts, connections (limits.py)
    resolve: dict = field(default_factory=dict)  # "host:port" -> "address:port": --resolve, DNS's local stand-in


def read_control_ca(path: str | None) -> str | None:
    """The mesh CA's certificate (PEM) from `path`, or None; a named file that is missing is an error."""
    if not path:
        return None
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError as e:
        raise UserError(f"cannot read the control plane's CA certificate {path}: {e.strerror}") from e


class Sidecar:
    def __init__(self, opts: SidecarOptions):
        self.opts = opts
        self.identity = {"service": opts.service, "version": opts.version, "instance": opts.instance}
        # Whose identity it holds, and whose namespace it reads config from (config/namespaces.py):
        # a service's own account in its namespace; the gateway is Istio's ingress gateway account.
        self.namespace, self.account = ((ROOT_NAMESPACE, GATEWAY_ACCOUNT) if opts.gateway
                                        else (opts.namespace, account_key(opts.namespace, opts.service)))
        self.holder = ConfigHolder(self.namespace)
        self.stats = Stats()
        self.guard = LoopGuard()  # 508 for a request that would come back into this sidecar
        self.pool = UpstreamPool(limits=opts.limits)
        self.pool.guard = self.guard
        self.pool.resolve = opts.resolve
        self.in_flight = InFlight()
        self.breakers = Breakers()  # connectionPool limits and retry budgets, per destination (breaker.py)
        self.outliers = Outliers()  # outlierDetection: who this sidecar has ejected (outlier.py)
        self.holder.on_change.append(self.outliers.sync)  # a changed cluster starts its counting afresh
        self.listeners: list[Listener] = []
        self.client: ControlPlaneClient | None = None
        # Workload identity (identity.py): with a join token the sidecar holds a
        # SPIFFE certificate and speaks mTLS to peers that have one (auto mTLS).
        self.workload = (WorkloadIdentity(opts.control_url, self.account, opts.instance, opts.token,
                                          control_ca=read_control_ca(opts.control_ca))
                         if opts.token else None)
        # Every call to the control plane (register, watch, ACK, sign, telemetry) goes through one channel,
        # with the TLS the workload identity says (control_channel.py).
        self.control = self.workload.channel if self.workload is not None else ControlChannel(opts.control_url)
        self.pool.mtls = AutoMTLS(self.workload)  # secure naming, with or without a certificate of our own
        self.metrics = MeshMetrics()
        self.metrics.count_overflows(self.breakers.overflows)
        self.metrics.count_ejections(self.outliers.active)
        self.exporter = (TelemetryExporter(opts.control_url, opts.instance, self.metrics, channel=self.control)
                         if opts.telemetry else None)
        if self.exporter is not None:
            self.exporter.outliers = self.outliers
        # Telemetry names the workload 'catalog' in default and 'catalog.foo' in foo (spiffe.reporter_of).
        reports_as = {**self.identity, "namespace": self.namespace,
                      "service": opts.service if opts.gateway else reporter_of(self.account)}
        self.telemetry = (RequestTelemetry(reports_as, self.metrics, self.exporter, opts.trace_sampling,
                                           AccessLog(opts.access_log)) if opts.telemetry else None)
        if self.telemetry is not None:  # ejections and returns: access-log and tap lines, from the caller's side
            reporter = "gateway" if opts.gateway else "outbound"
            self.outliers.emit = lambda event: self.telemetry.mesh_event(event, reporter)

    def is_ready(self) -> bool:
        return (self.client is not None and self.client.registered.is_set() and self.holder.received.is_set()
                and (self.workload is None or self.workload.current is not None))

    async def start(self) -> None:
        o = self.opts
        if o.control_url.startswith("https://"):
            if self.workload is None:
                raise UserError(f"the control plane at {o.control_url} admits only sidecars that prove who they "
                                f"are: pass a join token (--token, or MINIMESH_JOIN_TOKEN; `minimesh token {o.service}`)")
            self.workload.control_tls()  # no CA to verify the control plane by: one clear line now
        edge = lambda direction, route: Edge(direction, route, self.stats, self.identity,  # noqa: E731
                                             self.telemetry, self.guard)
        jwks = JwksCache()  # RequestAuthentication's jwksUri key sets, shared by this proxy's listeners
        # Its port, as policies name it: 8080, the app's container port (the gateway routers set theirs).
        workload = Workload(self._labels(), namespace=self.namespace, ip=o.advertise_host)
        if o.gateway:
            router = GatewayRouter(self.holder, self.pool, self.in_flight, workload, jwks,
                                   self.breakers, self.outliers)
            self.listeners.append(Listener("gateway", edge("gateway", router), o.host, o.listen_port,
                                           limits=o.limits))
            if o.tls_listen_port is not None:  # port 443 of the Gateway: TLS terminated here (gateway_tls.py)
                https = GatewayRouter(self.holder, self.pool, self.in_flight, workload, jwks,
                                      self.breakers, self.outliers, port=HTTPS_PORT)
                self.listeners.append(Listener("gateway-https", edge("gateway", https), o.host, o.tls_listen_port,
                                               GatewayTLS(self.holder, self._labels()), limits=o.limits,
                                               tls_server_of=server_of))
        else:
            if o.app_port is None:
                raise ValueError("a sidecar needs --app-port (or --gateway)")
            outbound = OutboundRouter(self.holder, self.pool, self.in_flight, self.breakers, self.outliers,
                                      labels=self._labels())
            inbound = InboundRouter(self.holder, self.pool, o.service, o.app_port, workload, jwks)
            self.listeners.append(Listener("outbound", edge("outbound", outbound), o.host, o.outbound_port,
                                           limits=o.limits))
            security = InboundSecurity(self.holder, self.workload, self._labels()) if self.workload else None
            self.listeners.append(Listener("inbound", edge("inbound", inbound), o.host, o.inbound_port, security,
                                           limits=o.limits))
        self.admin = Listener("sidecar admin", Admin(self), o.host, o.admin_port, limits=o.limits)
        for listener in self.listeners:
            await listener.start()
            if listener.name != "inbound":  # the listeners that forward anywhere: a loop could start there
                self.guard.listening(listener.name, o.host, listener.port, o.advertise_host)
        await self.admin.start()
        self.admin_port = self.admin.port
        registration = self._registration()
        if self.workload is not None:
            log.info("identity %s: asking the control plane for a certificate", self.workload.identity)
            self.workload.on_change = lambda creds: registration.update(certificate=self.workload.summary())
            await self.workload.obtain()
            self.workload.start_renewing()
        else:
            log.warning("no join token: running without an identity; plaintext only, "
                        "PeerAuthentication is not enforced here (`minimesh token %s` makes one)", self.account)
        self.client = ControlPlaneClient(self.control, registration, self.holder)
        self.client.start()
        if self.exporter is not None:
            self.exporter.start()

    def _registration(self) -> dict:
        o = self.opts
        ports = {listener.name: listener.port for listener in self.listeners}
        at = lambda port: f"{o.advertise_host}:{port}" if port else None  # noqa: E731
        labels = self._labels()
        return {
            **self.identity, "kind": "gateway" if o.gateway else "sidecar", "labels": labels,
            "namespace": self.namespace, "serviceAccount": self.account.rpartition("/")[2],
            "identity": self.workload.identity if self.workload else None,
            "certificate": self.workload.summary() if self.workload else None,
            # The app shares our network namespace, so it is reachable where we are
            # (127.0.0.1 locally; the container's address in Docker Compose).
            "addresses": {"app": at(o.app_port),
                          "inbound": at(ports.get("inbound")), "outbound": at(ports.get("outbound")),
                          "admin": at(self.admin_port)},
        }

    def _labels(self) -> dict:
        o = self.opts
        gateway = GATEWAY_LABELS if o.gateway else {}
        return {"app": o.service, "version": o.version, **gateway, **o.labels}

    async def stop(self) -> None:
        if self.workload is not None:
            await self.workload.stop()
        if self.client is not None:
            await self.client.stop(deregister=True)
            # Callers learn we left with their next snapshot; give it a moment
            # before the listeners close, so no new request finds a closed door.
            await asyncio.sleep(DRAIN_GRACE)
        for listener in self.listeners:
            await listener.stop()
        await self.admin.stop()
        await self.pool.close()
        if self.exporter is not None:
            await self.exporter.stop()
        await self.control.close()


async def serve(opts: SidecarOptions) -> None:
    sidecar = Sidecar(opts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await sidecar.start()
    # Everything made so far lives as long as the process: keep the cyclic
    # garbage collector from walking it again on every collection, and let
    # it run less often — a request allocates many short-lived objects, and
    # reference counting frees nearly all of them without its help.
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)
    log.info("sidecar %s ready to serve (control plane %s)", opts.instance, opts.control_url)
    await stop.wait()
    log.info("sidecar %s shutting down", opts.instance)
    await sidecar.stop()


def run_sidecar(opts: SidecarOptions) -> None:
    from minimesh.logs import run_async, setup_logging

    setup_logging()
    from minimesh.proxy.dice import seed_from_env

    seed_from_env(opts.instance)  # MINIMESH_SEED: repeatable splits for statistical tests
    run_async(serve(opts))
