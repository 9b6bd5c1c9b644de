"""The client side of the HTTP transport: keep-alive connection pools to upstreams.

One aiohttp session (one pool of kept-alive connections per upstream address)
for the whole sidecar. This is where socket errors become mesh errors, with
the response flag Envoy would give them:

    connection refused / unreachable / connect timeout  -> UF  (UpstreamConnectFailure)
    connection closed or reset before the answer        -> UC  (UpstreamReset)

With mTLS (`tls=` a context from tls.py) the connection is TLS 1.3 with our
client certificate, and once per connection — right after the handshake,
before any request is written on it — the server's SPIFFE ID is checked
against the one the context expects (secure naming). A mismatch closes the
connection and is a UF naming both identities.

Istio's default connect timeout is 10 s. Idle connections are closed after
15 s, well before the servers we talk to give up on them (aiohttp's 75 s),
so we are the side that closes and never reuse a connection being closed.

A destination whose DestinationRule has a `connectionPool` gets a pool of
its own, built from its `ConnectionSettings` (connect timeout, idle timeout,
TCP keepalive, requests per connection, max connections) — the breaker
layer (breaker.py) counts and queues; this pool enforces the socket side.
[issue-14 pool settings: the lines marked so are what the new transport must carry.]
"""

from __future__ import annotations

import socket
import ssl
import weakref
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from minimesh.errors import UpstreamConnectFailure, UpstreamReset
from minimesh.proxy.message import Request, Response
from minimesh.proxy.tls import peer_identity

CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 15.0
SMALL_BODY = 64 * 1024  # answers up to this are read whole: cheaper than streaming


class PeerIdentityMismatch(aiohttp.ClientConnectionError):
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
    idle_timeout: float = IDLE_TIMEOUT  # http.idleTimeout / tcp.idleTimeout
    keepalive: tuple[float | None, float | None, int | None] | None = None  # tcp.tcpKeepalive (time, interval, probes)

    @classmethod
    def of(cls, pool) -> "ConnectionSettings":
        """From a config.ConnectionPool."""
        k = pool.tcp_keepalive
        return cls(pool.max_connections, pool.max_requests_per_connection, pool.connect_timeout,
                   pool.idle_timeout if pool.idle_timeout is not None else IDLE_TIMEOUT,
                   (k.time, k.interval, k.probes) if k is not None else None)


class _MeshConnector(aiohttp.TCPConnector):
    """aiohttp's connector plus the secure-naming check, once per new TLS connection."""

    def __init__(self, *args, settings: ConnectionSettings | None = None, **kwargs):  # [issue-14 pool settings]
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.served: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> requests it carried
        self.opened = 0  # connections opened, for /stats
        self.recycled = 0  # closed after maxRequestsPerConnection

    def _release(self, key, protocol, *args, should_close: bool = False, **kwargs):  # [issue-14 pool settings]
        limit = self.settings.max_requests_per_connection if self.settings else None
        if limit is not None:
            self.served[protocol] = self.served.get(protocol, 0) + 1
            if self.served[protocol] >= limit:
                should_close = True
                self.recycled += 1
        return super()._release(key, protocol, *args, should_close=should_close, **kwargs)

    async def _create_connection(self, req, traces, timeout):
        proto = await super()._create_connection(req, traces, timeout)
        self.opened += 1
        if self.settings is not None and self.settings.keepalive is not None:  # [issue-14 pool settings]
            _set_keepalive(proto.transport.get_extra_info("socket"), *self.settings.keepalive)
        expected = getattr(req.ssl, "expected_peer", None) if isinstance(req.ssl, ssl.SSLContext) else None
        if expected is not None:
            presented = peer_identity(proto.transport.get_extra_info("ssl_object"))
            if presented != expected:
                proto.close()
                raise PeerIdentityMismatch(presented, expected)
        return proto


class UpstreamPool:
    def __init__(self, connect_timeout: float = CONNECT_TIMEOUT):
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        # [issue-14 pool settings] one pool per destination that has connectionPool settings
        self._sessions: dict[tuple[str, ConnectionSettings], aiohttp.ClientSession] = {}
        # The sidecar's auto-mTLS policy (mtls.py): request -> TLS context or None.
        self.mtls = None

    def _open(self, settings: ConnectionSettings | None = None) -> aiohttp.ClientSession:
        s = settings or ConnectionSettings(connect_timeout=self.connect_timeout)
        once = s.max_requests_per_connection == 1  # one request per connection: no keep-alive at all
        connector = _MeshConnector(limit=s.max_connections or 0, force_close=once,
                                   **({} if once else {"keepalive_timeout": s.idle_timeout}),
                                   use_dns_cache=True, ttl_dns_cache=10, settings=settings)
        return aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    def _session_for(self, destination: str | None, settings: ConnectionSettings | None) -> aiohttp.ClientSession:
        if settings is None:  # [issue-14 pool settings]
            if self._session is None:
                self._session = self._open()
            return self._session
        key = (destination or "", settings)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = self._open(settings)
        return session

    def counters(self) -> dict:  # [issue-14 pool settings]
        """Connections opened and recycled (maxRequestsPerConnection), per destination with settings."""
        out: dict[str, dict] = {}
        for (name, _), session in self._sessions.items():  # a settings change makes a new pool: add them up
            row = out.setdefault(name, {"opened": 0, "recycled": 0})
            row["opened"] += session.connector.opened
            row["recycled"] += session.connector.recycled
        return out

    async def send(self, address: str, request: Request, tls: ssl.SSLContext | None = None,
                   settings: ConnectionSettings | None = None, destination: str | None = None) -> Response:
        """Send `request` to `address` ("host:port"), over mTLS with `tls`, and return the answer.

        `settings` (with the `destination` cluster they belong to) choose that destination's own pool.
        """
        session = self._session_for(destination, settings)
        url = URL(f"{'https' if tls else 'http'}://{address}{request.path}", encoded=True)
        headers = CIMultiDict(request.headers)
        headers["Host"] = request.authority
        try:
            upstream = await session.request(
                request.method, url, headers=headers, data=request.body or None,
                allow_redirects=False, compress=None, proxy=None, ssl=tls or True)
        except PeerIdentityMismatch as e:
            raise UpstreamConnectFailure(f"{address}: {e}") from e
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            raise UpstreamConnectFailure(f"cannot connect to {address}: {_why(e)}") from e
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                aiohttp.ClientPayloadError) as e:
            raise UpstreamReset(f"{address} closed the connection before answering: {_why(e)}") from e
        response_headers = CIMultiDict(upstream.headers)
        if upstream.content_length is not None and upstream.content_length <= SMALL_BODY:
            try:
                body = await upstream.read()
            except (aiohttp.ClientError, OSError) as e:
                raise UpstreamReset(f"{address} reset the connection mid-answer: {_why(e)}") from e
            finally:
                upstream.release()
            return Response(upstream.status, response_headers, body)
        return Response(upstream.status, response_headers, _stream(upstream), release=_releaser(upstream))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        for session in self._sessions.values():  # [issue-14 pool settings]
            await session.close()
        self._sessions.clear()


async def _stream(upstream: aiohttp.ClientResponse):
    async for chunk in upstream.content.iter_any():
        yield chunk


def _releaser(upstream: aiohttp.ClientResponse):
    async def release():
        upstream.release()
    return release


def _set_keepalive(sock, idle: float | None, interval: float | None, probes: int | None) -> None:
    """SO_KEEPALIVE with Istio's tcpKeepalive time/interval/probes (Linux names; others keep the OS default)."""
    if sock is None:  # [issue-14 pool settings]
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in ((getattr(socket, "TCP_KEEPIDLE", None), idle), (getattr(socket, "TCP_KEEPINTVL", None), interval),
                          (getattr(socket, "TCP_KEEPCNT", None), probes)):
        if option is not None and value is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(value)))


def _why(e: Exception) -> str:
    return str(e) or type(e).__name__
