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
"""

from __future__ import annotations

import ssl

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


class _MeshConnector(aiohttp.TCPConnector):
    """aiohttp's connector plus the secure-naming check, once per new TLS connection."""

    async def _create_connection(self, req, traces, timeout):
        proto = await super()._create_connection(req, traces, timeout)
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
        # The sidecar's auto-mTLS policy (mtls.py): request -> TLS context or None.
        self.mtls = None

    def _open(self) -> aiohttp.ClientSession:
        connector = _MeshConnector(limit=0, keepalive_timeout=IDLE_TIMEOUT,
                                   use_dns_cache=True, ttl_dns_cache=10)
        return aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def send(self, address: str, request: Request, tls: ssl.SSLContext | None = None) -> Response:
        """Send `request` to `address` ("host:port"), over mTLS with `tls`, and return the answer."""
        if self._session is None:
            self._session = self._open()
        url = URL(f"{'https' if tls else 'http'}://{address}{request.path}", encoded=True)
        headers = CIMultiDict(request.headers)
        headers["Host"] = request.authority
        try:
            upstream = await self._session.request(
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


async def _stream(upstream: aiohttp.ClientResponse):
    async for chunk in upstream.content.iter_any():
        yield chunk


def _releaser(upstream: aiohttp.ClientResponse):
    async def release():
        upstream.release()
    return release


def _why(e: Exception) -> str:
    return str(e) or type(e).__name__
