"""Keep-alive connection pools to upstreams: the client half of the transport boundary.

One pool per upstream address (and TLS context) for the whole sidecar.
A request takes the most recently used idle connection (the one least
likely to have been closed by the other side) or opens a new one; the
connection comes back by itself when its answer has fully arrived
(http_client.py). This is where socket errors become mesh errors, with the
response flag Envoy would give them:

    connection refused / unreachable / connect timeout  -> UF  (UpstreamConnectFailure)
    connection closed or reset before the answer        -> UC  (UpstreamReset)
    an answer that is not HTTP, or too large a head     -> UPE (BadUpstreamResponse, 502)

With mTLS (`tls=` a context from tls.py) the connection is TLS 1.3 with our
client certificate, and once per connection — right after the handshake,
before any request is written on it — the server's SPIFFE ID is checked
against the one the context expects (secure naming). A mismatch closes the
connection and is a UF naming both identities. A new connection to a host we
spoke TLS to before resumes that session (tls.py: ResumingContext).

Istio's default connect timeout is 10 s. Idle connections are closed after
15 s, well before the servers we talk to give up on them (aiohttp's 75 s),
so we are the side that closes. Should a kept-alive connection still turn
out closed when reused — not one byte of answer — a request we hold in full
is sent once more on a fresh connection, as every HTTP client does.

A destination whose DestinationRule has a `connectionPool` gets a pool of
its own, built from its `ConnectionSettings` (connect timeout, idle timeout,
TCP keepalive, requests per connection, max connections; an idle timeout of
0s keeps idle connections for good, as Envoy's 0 does) — the breaker
layer (breaker.py) counts and queues; this pool enforces the socket side.
[issue-14 pool settings: the lines marked so.]
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import time
from collections import Counter, deque
from dataclasses import dataclass

from minimesh.errors import UpstreamConnectFailure
from minimesh.proxy.transport import wire
from minimesh.proxy.transport.http_client import StaleConnection, UpstreamConnection
from minimesh.proxy.transport.limits import DEFAULT_LIMITS, Limits
from minimesh.proxy.message import Request, Response
from minimesh.proxy.transport.tls import peer_identity

CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 15.0
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # these say Content-Length: 0 when they carry nothing


class PeerIdentityMismatch(Exception):
    """The server's certificate is valid but names another workload."""

    def __init__(self, presented: str | None, expected: str):
        self.presented, self.expected = presented, expected
        super().__init__(f"peer presented {presented or 'no SPIFFE ID'}, expected {expected} (secure naming)")


@dataclass(frozen=True)
class ConnectionSettings:  # [issue-14 pool settings]
    """What a DestinationRule's connectionPool asks of the connections to one destination."""

    max_connections: int | None = None  # tcp.maxConnections (the breaker queues; this is the socket cap)
    max_requests_per_connection: int | None = None  # http.maxRequestsPerConnection: then the connection closes
    connect_timeout: float = CONNECT_TIMEOUT  # tcp.connectTimeout
    idle_timeout: float = IDLE_TIMEOUT  # http.idleTimeout, else tcp.idleTimeout; math.inf: none (0s)
    keepalive: tuple[float | None, float | None, int | None] | None = None  # tcp.tcpKeepalive (time, interval, probes)

    @classmethod
    def of(cls, pool) -> "ConnectionSettings":
        """From a config.ConnectionPool."""
        k = pool.tcp_keepalive
        return cls(pool.max_connections, pool.max_requests_per_connection, pool.connect_timeout,
                   _idle(pool.idle_timeout),
                   (k.time, k.interval, k.probes) if k is not None else None)


def _idle(seconds: float | None) -> float:
    """A connectionPool's idle timeout for the pool: unset is ours (15 s); 0s is none, as Envoy's 0."""
    if seconds is None:
        return IDLE_TIMEOUT
    return math.inf if seconds == 0 else seconds


class _Destination:  # [issue-14 pool settings]
    """The connections to one destination with settings: how many are open, who waits for one."""

    def __init__(self, settings: ConnectionSettings):
        self.settings = settings
        self.open = 0
        self.waiters: deque[asyncio.Future] = deque()

    def wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class UpstreamPool:
    def __init__(self, connect_timeout: float = CONNECT_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                 limits: Limits = DEFAULT_LIMITS, clock=time.monotonic):
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.limits = limits  # the response-header limits (limits.py)
        self.clock = clock
        # The sidecar's auto-mTLS policy (mtls.py): request -> TLS context or None.
        self.mtls = None
        # The sidecar's loop guard (loop_guard.py): refuses destinations that are ourselves.
        self.guard = None
        # "host:port" -> "address:port" where to connect instead (--resolve: what DNS would say).
        self.resolve: dict[str, str] = {}
        self._idle: dict[tuple, list[UpstreamConnection]] = {}
        self._open: set[UpstreamConnection] = set()
        self._sweeper: asyncio.Task | None = None
        # [issue-14 pool settings] per destination with connectionPool settings: its connections and counters
        self._destinations: dict[tuple[str, ConnectionSettings], _Destination] = {}
        self._opened: Counter = Counter()
        self._recycled: Counter = Counter()

    def counters(self) -> dict:  # [issue-14 pool settings]
        """Connections opened and recycled (maxRequestsPerConnection), per destination with settings."""
        return {name: {"opened": self._opened[name], "recycled": self._recycled[name]} for name in self._opened}

    async def send(self, address: str, request: Request, tls: ssl.SSLContext | None = None,
                   settings: ConnectionSettings | None = None, destination: str | None = None) -> Response:
        """Send `request` to `address` ("host:port"), over mTLS with `tls`, and return the answer.

        `settings` (with the `destination` cluster they belong to) choose that destination's own pool.
        """
        extra = self.guard.leaving(address, request) if self.guard is not None else ""
        body = request.body
        upgrade = request.upgrade
        if upgrade is not None:
            extra += f"Connection: Upgrade\r\nUpgrade: {upgrade}\r\n"
        if isinstance(body, bytes):
            if body or request.method in BODY_METHODS:
                extra += f"Content-Length: {len(body)}\r\n"
        else:
            extra += "Transfer-Encoding: chunked\r\n"
        head = wire.request_head(request.method, request.path, request.authority, request.headers, extra)
        key = (address, tls, settings)
        group = None
        if settings is not None:  # [issue-14 pool settings]
            group = self._destinations.get((destination or "", settings))
            if group is None:
                group = self._destinations[(destination or "", settings)] = _Destination(settings)
        conn = self._take(key)
        if conn is not None:
            try:
                return await conn.exchange(request, head, body)
            except StaleConnection:
                if not isinstance(body, bytes):
                    raise
        while group is not None and group.settings.max_connections and group.open >= group.settings.max_connections:
            waiter = asyncio.get_running_loop().create_future()  # tcp.maxConnections: wait for one to free up
            group.waiters.append(waiter)
            await waiter
            conn = self._take(key)
            if conn is not None:
                return await conn.exchange(request, head, body)
        conn = await self._connect(address, tls, key, group, destination)
        return await conn.exchange(request, head, body)

    def _take(self, key) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = self.clock()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < conn.idle_timeout:
                return conn
            conn.close()
        return None

    def _park(self, key, group: _Destination | None, destination: str | None):
        limit = group.settings.max_requests_per_connection if group is not None else None

        def park(conn: UpstreamConnection) -> None:
            if limit is not None and conn.requests >= limit:  # [issue-14] http.maxRequestsPerConnection
                self._recycled[destination or ""] += 1
                conn.close()
                return
            conn.idle_since = self.clock()
            self._idle.setdefault(key, []).append(conn)
            if group is not None:
                group.wake()
        return park

    def _lost(self, group: _Destination | None):
        def lost(conn: UpstreamConnection) -> None:
            self._open.discard(conn)
            if group is not None:
                group.open -= 1
                group.wake()
        return lost

    async def _connect(self, address: str, tls: ssl.SSLContext | None, key, group: _Destination | None = None,
                       destination: str | None = None) -> UpstreamConnection:
        named = address.rpartition(":")[0].strip("[]")  # the name TLS checks, even when resolved elsewhere
        host, _, port = self.resolve.get(address.lower(), address).rpartition(":")
        host = host.strip("[]")
        loop = asyncio.get_running_loop()
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep(), name="upstream pool idle sweep")
        settings = group.settings if group is not None else None
        connect_timeout = settings.connect_timeout if settings is not None else self.connect_timeout
        if group is not None:
            group.open += 1
        # TLS origination (origination.py) names the server it expects; mTLS checks the SPIFFE ID instead.
        server_name = (getattr(tls, "server_name", None) or named) if tls is not None else None
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(address, self.limits, self._park(key, group, destination), tls,
                                               server_name or host),
                    host, int(port), ssl=tls, server_hostname=server_name)
        except TimeoutError as e:
            self._lost(group)(None)
            raise UpstreamConnectFailure(f"cannot connect to {address}: no answer within "
                                         f"{connect_timeout:g}s (connect timeout)") from e
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError: a failed handshake
            self._lost(group)(None)
            raise UpstreamConnectFailure(f"cannot connect to {address}: {_why(e)}") from e
        conn.on_lost = self._lost(group)
        conn.idle_timeout = settings.idle_timeout if settings is not None else self.idle_timeout
        if settings is not None:  # [issue-14 pool settings]
            self._opened[destination or ""] += 1
            if settings.keepalive is not None:
                _set_keepalive(conn.transport.get_extra_info("socket"), *settings.keepalive)
        expected = getattr(tls, "expected_peer", None) if tls is not None else None
        if expected is not None:
            presented = peer_identity(conn.transport.get_extra_info("ssl_object"))
            if presented != expected:
                conn.close()
                raise UpstreamConnectFailure(f"{address}: {PeerIdentityMismatch(presented, expected)}")
        verify = getattr(tls, "verify_peer", None) if tls is not None else None
        problem = verify(conn.transport.get_extra_info("ssl_object")) if verify is not None else None
        if problem is not None:  # a DestinationRule's subjectAltNames
            conn.close()
            raise UpstreamConnectFailure(f"{address}: {problem}")
        self._open.add(conn)
        return conn

    async def _sweep(self) -> None:
        """Close connections idle past the timeout, so they do not linger until next used."""
        while True:
            await asyncio.sleep(max(1.0, self.idle_timeout / 2))
            now = self.clock()
            for key, idle in list(self._idle.items()):
                keep = [c for c in idle if not c.closed and now - c.idle_since < c.idle_timeout]
                for conn in idle:
                    if conn not in keep:
                        conn.close()
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
            self._open = {c for c in self._open if not c.closed}

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for conn in self._open:
            conn.close()
        self._open.clear()
        self._idle.clear()


def _set_keepalive(sock, idle: float | None, interval: float | None, probes: int | None) -> None:
    """SO_KEEPALIVE with Istio's tcpKeepalive time/interval/probes (Linux names; others keep the OS default)."""
    if sock is None:  # [issue-14 pool settings]
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in ((getattr(socket, "TCP_KEEPIDLE", None), idle),
                          (getattr(socket, "TCP_KEEPINTVL", None), interval),
                          (getattr(socket, "TCP_KEEPCNT", None), probes)):
        if option is not None and value is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(value)))


def _why(e: Exception) -> str:
    reason = getattr(e, "reason", None)
    if isinstance(e, ssl.SSLError) and reason:
        detail = getattr(e, "verify_message", None)
        return f"TLS handshake failed ({reason}{': ' + detail if detail else ''})"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__
