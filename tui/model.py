"""What the TUI knows about the mesh: small frozen rows, parsed once by client.py.

The views only ever read these, never the control plane's JSON, so a change
in the API's shapes touches client.py alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Latency:
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@dataclass(frozen=True)
class Workload:
    """One service version as its own inbound side saw it (Linkerd's `stat` row)."""

    service: str
    version: str
    meshed: int
    requests: int
    rps: float
    success: float | None  # share of answers that were not 5xx
    latency: Latency
    effective: float | None  # what callers saw, after retries
    actual: float | None  # every attempt, before retries hid failures
    retries: int
    mtls_share: float | None


@dataclass(frozen=True)
class Edge:
    """Who calls whom, from the caller's side."""

    source: str
    source_version: str
    destination: str
    destination_version: str
    requests: int
    rps: float
    success: float | None
    actual: float | None
    retries: int
    mtls_share: float | None
    latency: Latency


@dataclass(frozen=True)
class Route:
    """A VirtualService route of a destination service, from the callers' side."""

    service: str
    route: str
    requests: int
    rps: float
    effective: float | None
    actual: float | None
    retries: int
    latency: Latency


@dataclass(frozen=True)
class Stat:
    window_s: float
    workloads: tuple[Workload, ...] = ()
    edges: tuple[Edge, ...] = ()
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True)
class Proxy:
    """A sidecar or gateway: config sync and certificate, from /v1/status."""

    node: str
    service: str
    version: str
    kind: str
    acked_version: str | None
    nacked_version: str | None
    nack_error: str | None
    acked_config_version: int | None
    identity: str | None
    cert_not_after: float | None  # unix seconds; None: no certificate (plaintext only)


@dataclass(frozen=True)
class MeshStatus:
    config_version: int
    snapshot_version: str
    proxies: tuple[Proxy, ...] = ()
    ejected: tuple[tuple[str, str], ...] = ()  # (instance, the caller that ejected it): outlier detection now
    lesson: str | None = None  # the lesson the control plane says it runs (both modes)

    def ejected_instances(self, service: str, version: str) -> set[str]:
        """Instances of service/version that some caller's outlier detection has ejected now."""
        mine = {p.node for p in self.proxies if (p.service, p.version) == (service, version)}
        return {instance for instance, _ in self.ejected if instance in mine}


@dataclass(frozen=True)
class Instance:
    service: str
    version: str
    instance: str
    kind: str
    app: str | None  # host:port of the app (its fault knobs live at /_fault)
    inbound: str | None


@dataclass(frozen=True)
class Peer:
    service: str | None = None
    version: str | None = None
    instance: str | None = None

    def label(self) -> str:
        text = self.service or "?"
        return f"{text}/{self.version}" if self.version else text


@dataclass(frozen=True)
class Attempt:
    """One try at an upstream: where it went, what came back, why it failed."""

    number: int
    endpoint: str | None
    instance: str | None
    status: int | None
    error: str | None
    start_ms: float  # after the request started
    duration_ms: float


@dataclass(frozen=True)
class TapEvent:
    seq: int
    ts: float
    trace_id: str | None
    reporter: str  # inbound | outbound | gateway
    source: Peer
    destination: Peer
    method: str | None
    authority: str | None
    path: str | None
    route: str | None
    status: int | None
    flags: tuple[str, ...]
    duration_ms: float
    attempts: int
    retries: int
    mtls: bool
    external: bool = False
    subset: str | None = None
    endpoint: str | None = None
    attempt_list: tuple[Attempt, ...] = ()
    authz: str | None = None  # AuthorizationPolicy's decision and the policy/rule that made it
    identity: str | None = None  # the peer's SPIFFE ID, from the certificate it proved (None: plaintext)
    kind: str = "request"  # or "outlier": the source's sidecar ejected the destination instance, or let it back
    event: str | None = None  # "ejected" | "returned" (kind "outlier")
    note: str | None = None  # the event in words: "ejected for 30s (consecutive5xxErrors 1, ejection 1)"
    reason: str | None = None  # which outlierDetection threshold was reached


@dataclass(frozen=True)
class Span:
    span_id: str
    parent_id: str | None
    kind: str  # gateway | client | server | attempt
    service: str
    instance: str | None
    peer: Peer
    name: str
    route: str | None
    status: int | None
    flags: tuple[str, ...]
    start: float  # unix seconds
    duration_ms: float
    mtls: bool
    error: str | None = None


@dataclass(frozen=True)
class Trace:
    trace_id: str
    start: float
    duration_ms: float
    spans: tuple[Span, ...] = field(default_factory=tuple)
