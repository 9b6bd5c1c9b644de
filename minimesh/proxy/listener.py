"""The server side of the HTTP transport: a listening socket that hands
minimesh `Request`s to a layer stack and writes its `Response`s back.

This and `pool.py` are the narrow boundary behind which aiohttp sits; no layer
imports aiohttp. Malformed requests never reach a layer: the parser answers
400, and oversize headers 431 (RFC 6585 §5, "Request Header Fields Too Large")
— the limit is 64 KiB for one field and for all of them together.
"""

from __future__ import annotations

import errno
import logging

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

from minimesh.errors import HeadersTooLarge, UserError
from minimesh.proxy.headers import strip_hop_by_hop
from minimesh.proxy.message import Journey, Request, Response
from minimesh.proxy.sniffing import SniffingSite
from minimesh.proxy.tls import peer_identity, peer_in_trust_domain

log = logging.getLogger("minimesh.proxy")

MAX_HEADER_BYTES = 64 * 1024
BUFFER_LIMIT = 1024 * 1024  # request bodies up to this are held whole, so they can be retried
STREAM_CHUNK = 64 * 1024


class _Protocol(RequestHandler):
    peer_identity: str | None = None  # the SPIFFE ID the client proved, on an mTLS connection
    mtls = False

    def connection_made(self, transport) -> None:
        # Once per connection, not per request: who is on the other end of it.
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.mtls = True
            self.peer_identity = peer_identity(ssl_object)
        super().connection_made(transport)
        # issue 15 (secure naming): a peer of another trust domain is refused, however it chains.
        if ssl_object is not None and not peer_in_trust_domain(self.peer_identity, transport):
            transport.abort()

    def handle_error(self, request, status=500, exc=None, message=None):
        too_large = isinstance(exc, LineTooLong) or (
            isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc))
        if too_large:
            status, message = 431, "431 Request Header Fields Too Large: headers over 64 KiB"
        if isinstance(exc, BadHttpMessage):
            # A client's mistake, not ours: one quiet line instead of a traceback.
            log.info("malformed request from %s: %s", request.remote, exc.message)
            resp = web.Response(status=status, text=(message or "400 Bad Request") + "\n")
            resp.force_close()
            return resp
        return super().handle_error(request, status, exc, message)


class _Server(web.Server):
    def __call__(self):
        return _Protocol(self, loop=self._loop, **self._kwargs)


def header_bytes(raw: web.BaseRequest) -> int:
    return sum(len(k) + len(v) + 4 for k, v in raw.raw_headers)


async def read_request(raw: web.BaseRequest, direction: str) -> Request:
    """An aiohttp request as a minimesh Request (hop-by-hop headers already gone)."""
    if header_bytes(raw) > MAX_HEADER_BYTES:
        raise HeadersTooLarge("request headers exceed 64 KiB in total")
    headers = strip_hop_by_hop(CIMultiDict(raw.headers))
    if not raw.body_exists:
        body = b""
    elif raw.content_length is not None and raw.content_length <= BUFFER_LIMIT:
        body = await raw.read()
    else:
        body = raw.content.iter_chunked(STREAM_CHUNK)
    if raw.raw_path.startswith(("http://", "https://")):  # absolute-form: we are a forward proxy
        authority = raw.url.raw_authority
        path = raw.url.raw_path_qs
    else:
        authority = raw.host
        path = raw.raw_path
    journey = Journey(direction)
    protocol = raw.protocol
    if getattr(protocol, "mtls", False):
        journey.mtls = True  # connection_security_policy="mutual_tls"
        journey.peer_identity = protocol.peer_identity
    return Request(method=raw.method, path=path, authority=authority, headers=headers, body=body,
                   client=raw.remote or "", journey=journey)


async def write_response(raw: web.BaseRequest, response: Response) -> web.StreamResponse:
    """Send a minimesh Response downstream, streaming its body when it is a stream."""
    headers = strip_hop_by_hop(response.headers)
    try:
        if isinstance(response.body, bytes):
            headers.popall("content-length", None)
            return web.Response(status=response.status, headers=headers, body=response.body)
        out = web.StreamResponse(status=response.status, headers=headers)
        await out.prepare(raw)
        async for chunk in response.body:
            await out.write(chunk)
        await out.write_eof()
        return out
    finally:
        await response.discard()


class Listener:
    """One listening socket serving `handler(raw_request) -> web.StreamResponse`.

    With a `security` policy (mtls.py) each connection is first sorted by its
    first byte into mTLS, plaintext or refused (sniffing.py).
    """

    def __init__(self, name: str, handler, host: str, port: int, security=None):
        self.name, self.handler, self.host, self.requested_port = name, handler, host, port
        self.security = security
        self.port = None
        self._runner = None

    async def start(self) -> "Listener":
        server = _Server(self.handler, max_field_size=MAX_HEADER_BYTES, max_headers=256,
                         access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=5)
        await self._runner.setup()
        if self.security is not None:
            site = SniffingSite(self._runner, self.host, self.requested_port, self.security, name=self.name)
        else:
            site = web.TCPSite(self._runner, self.host, self.requested_port, backlog=1024)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"port {self.requested_port} is already in use ({self.name}); "
                                f"stop whatever holds it or choose another port") from e
            raise
        self.port = site.port if self.security is not None else site._server.sockets[0].getsockname()[1]
        log.info("%s listening on %s:%s", self.name, self.host, self.port)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
