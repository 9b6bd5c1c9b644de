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
"""

from __future__ import annotations

import asyncio
import ssl
import time

from minimesh.errors import UpstreamConnectFailure
from minimesh.proxy import wire
from minimesh.proxy.http_client import StaleConnection, UpstreamConnection
from minimesh.proxy.limits import DEFAULT_LIMITS, Limits
from minimesh.proxy.message import Request, Response
from minimesh.proxy.tls import peer_identity

CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 15.0
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # these say Content-Length: 0 when they carry nothing


class PeerIdentityMismatch(Exception):
    """The server's certificate is valid but names another workload."""

    def __init__(self, presented: str | None, expected: str):
        self.presented, self.expected = presented, expected
        super().__init__(f"peer presented {presented or 'no SPIFFE ID'}, expected {expected} (secure naming)")


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
        self._idle: dict[tuple, list[UpstreamConnection]] = {}
        self._open: set[UpstreamConnection] = set()
        self._sweeper: asyncio.Task | None = None

    async def send(self, address: str, request: Request, tls: ssl.SSLContext | None = None) -> Response:
        """Send `request` to `address` ("host:port"), over mTLS with `tls`, and return the answer."""
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
        key = (address, tls)
        conn = self._take(key)
        if conn is not None:
            try:
                return await conn.exchange(request, head, body)
            except StaleConnection:
                if not isinstance(body, bytes):
                    raise
        conn = await self._connect(address, tls, key)
        return await conn.exchange(request, head, body)

    def _take(self, key) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = self.clock()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                return conn
            conn.close()
        return None

    def _park(self, key):
        def park(conn: UpstreamConnection) -> None:
            conn.idle_since = self.clock()
            self._idle.setdefault(key, []).append(conn)
        return park

    async def _connect(self, address: str, tls: ssl.SSLContext | None, key) -> UpstreamConnection:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        loop = asyncio.get_running_loop()
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep(), name="upstream pool idle sweep")
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(address, self.limits, self._park(key), tls, host), host, int(port),
                    ssl=tls, server_hostname=(host if tls is not None else None))
        except TimeoutError as e:
            raise UpstreamConnectFailure(f"cannot connect to {address}: no answer within "
                                         f"{self.connect_timeout:g}s (connect timeout)") from e
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError: a failed handshake
            raise UpstreamConnectFailure(f"cannot connect to {address}: {_why(e)}") from e
        expected = getattr(tls, "expected_peer", None) if tls is not None else None
        if expected is not None:
            presented = peer_identity(conn.transport.get_extra_info("ssl_object"))
            if presented != expected:
                conn.close()
                raise UpstreamConnectFailure(f"{address}: {PeerIdentityMismatch(presented, expected)}")
        self._open.add(conn)
        return conn

    async def _sweep(self) -> None:
        """Close connections idle past the timeout, so they do not linger until next used."""
        while True:
            await asyncio.sleep(max(1.0, self.idle_timeout / 2))
            now = self.clock()
            for key, idle in list(self._idle.items()):
                keep = [c for c in idle if not c.closed and now - c.idle_since < self.idle_timeout]
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


def _why(e: Exception) -> str:
    reason = getattr(e, "reason", None)
    if isinstance(e, ssl.SSLError) and reason:
        detail = getattr(e, "verify_message", None)
        return f"TLS handshake failed ({reason}{': ' + detail if detail else ''})"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__
