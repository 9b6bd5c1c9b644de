"""minimesh's own small request and response types.

Every layer of the data plane works on these, never on the transport's own
objects, so the HTTP transport (`http_server.py`, `http_client.py`) can be
swapped without touching a layer.

A body is either `bytes` (small, already read — it can be sent again, which is
what lets a request be retried) or an async iterator of chunks that streams
through once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

from multidict import CIMultiDict

Body = bytes | AsyncIterator[bytes]


@dataclass
class Attempt:
    """One try at an upstream: which endpoint, and how it ended."""

    endpoint: str
    status: int | None = None
    error: str | None = None
    duration_ms: float = 0.0
    started: float = field(default_factory=time.monotonic)  # for the attempt's span in a trace


@dataclass(init=False)
class Journey:
    """What the mesh decided for one request, for logs, stats and explanations.

    One is made per request per hop, so its constructor sets only what every
    request needs; every other field reads its class default until a layer
    sets it (a generated dataclass __init__ would assign all of them).
    """

    direction: str  # "outbound", "inbound" or "gateway"
    service: str | None = None  # the mesh service the request is for
    route: str | None = None  # the name of the VirtualService http route that matched
    subset: str | None = None
    external: bool = False  # outbound to a host that is not a mesh service
    attempts: list[Attempt] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # Filled in by the layers as the request travels inwards:
    config: object = None  # the MeshConfig in force when the request arrived
    virtual_service: object = None  # gateway: the bound VirtualService to apply (ingress.py)
    no_route: str = ""  # gateway: why no VirtualService serves this Host (404 NR in route.py)
    tls_server: object = None  # gateway, HTTPS port: the Gateway server whose certificate the SNI chose
    http_route: object = None  # the matched route (route.py)
    http_match: object = None  # which of its match entries fitted (None: a route without match), for rewrite.uri
    destination_headers: object = None  # the picked destination's own `headers` (split.py, header_ops.py)
    cluster: object = None  # the service + subset picked (split.py)
    endpoint: str | None = None  # the endpoint of the current attempt (balancer.py)
    endpoint_instance: str | None = None
    hash_key: str | None = None  # consistentHash: this request's key, kept for its retries (ringhash.py)
    peer_identity: str | None = None  # over mTLS: the SPIFFE ID the peer proved (inbound: the caller; outbound: the upstream)
    request_auth: object = None  # a verified JWT's principal and claims (jwt_authn.py)
    authz: dict | None = None  # what AuthorizationPolicy decided and why (authz.py), for logs and tap

    # Telemetry (proxy/observe/telemetry.py): this hop's span in the request's trace.
    trace_id: str | None = None
    span_id: str | None = None
    parent_id: str | None = None  # the caller's span; None when this hop started the trace
    sampled: bool = False  # is this trace recorded? (traceparent's flag; decided where the trace starts)
    peer: str | None = None  # inbound: the calling workload, "service;version;instance"
    mtls: bool = False  # set by the mTLS layer when the connection was mutual TLS
    # outbound: how the last attempt went out (secure_naming.py): "mutual_tls <identity>", "plaintext",
    # or "plaintext (no verified identity)" — PERMISSIVE to an endpoint that proved nothing, said so
    upstream_security: str | None = None

    def __init__(self, direction: str, **given):
        self.direction = direction
        self.attempts: list[Attempt] = []
        self.flags: list[str] = []
        self.started = time.monotonic()
        if given:
            unknown = given.keys() - self.__dataclass_fields__.keys()
            if unknown:
                raise TypeError(f"Journey has no field {', '.join(sorted(unknown))}")
            self.__dict__.update(given)

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags.append(name)


@dataclass
class Request:
    method: str
    path: str  # origin-form: path and query, e.g. "/prices?ids=p1"
    authority: str  # the host (and port) the request is for
    headers: CIMultiDict
    body: Body = b""
    client: str = ""  # the downstream peer's address
    journey: Journey = field(default_factory=lambda: Journey("outbound"))
    upgrade: str | None = None  # the protocol an Upgrade request asks for (e.g. "websocket"), sent on hop by hop

    @property
    def replayable(self) -> bool:
        """Only a body we hold in full can be sent a second time."""
        return isinstance(self.body, bytes)


@dataclass
class Response:
    status: int
    headers: CIMultiDict
    body: Body = b""
    # Called once the body has been sent on (or dropped): returns the upstream
    # connection to its pool.
    release: Callable[[], Awaitable[None]] | None = None
    # After a 101 to an Upgrade request: the upstream connection, spliced to the client's (tunnel.py).
    tunnel: object = None

    async def discard(self) -> None:
        """Drop this response without sending it on (e.g. before a retry)."""
        if self.release is not None:
            await self.release()
            self.release = None


# A layer is anything that turns a Request into a Response.
Service = Callable[[Request], Awaitable[Response]]


def text_response(status: int, text: str, headers: dict | None = None) -> Response:
    h = CIMultiDict({"content-type": "text/plain; charset=utf-8"})
    if headers:
        h.update(headers)
    return Response(status, h, (text + "\n").encode())
