"""The client side of the data plane's HTTP/1.1: one asyncio Protocol per upstream connection.

`exchange()` writes one request (head and body in one write when the body
is in hand, else streamed with back-pressure) and returns the upstream's
`Response` as soon as it is worth handing on: with its whole body when that
is small and of known length (cheaper than streaming), else with its head
and a body that streams (body.py). The connection goes back to its pool
(pool.py) by itself once the answer has fully arrived and the request was
fully sent; a connection whose exchange ended any other way is closed, never
reused half-read.

What can go wrong here, and what it becomes (the flags Envoy would log):

    the upstream closes or resets before answering   UpstreamReset        503 UC
    its answer is not HTTP, or its head over limits   BadUpstreamResponse  502 UPE
"""

from __future__ import annotations

import asyncio

import httptools
from multidict import CIMultiDict

from minimesh.errors import BadUpstreamResponse, MeshError, UpstreamReset
from minimesh.proxy.transport import wire
from minimesh.proxy.transport.body import BodyStream
from minimesh.proxy.transport.flow import Flow
from minimesh.proxy.transport.limits import Limits
from minimesh.proxy.message import Request, Response
from minimesh.proxy.transport.tunnel import TunnelEnd

SMALL_BODY = 64 * 1024  # answers up to this are read whole: cheaper than streaming
NO_BODY_STATUSES = frozenset({204, 304})


class StaleConnection(UpstreamReset):
    """A kept-alive connection closed before a single byte of the answer: safe to try a new one."""


class _TooLarge(Exception):
    pass


class UpstreamConnection(TunnelEnd, asyncio.Protocol):
    def __init__(self, address: str, limits: Limits, on_idle, tls=None, server_hostname: str | None = None):
        self.address = address
        self.tls, self.server_hostname = tls, server_hostname  # to remember the TLS session (tls.py)
        self.limits = limits
        self.on_idle = on_idle  # the pool takes the connection back: on_idle(conn)
        self.flow = Flow()
        self.transport = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reusable = True
        self.requests = 0  # exchanges started on this connection
        self.idle_since = 0.0
        self.idle_timeout = 15.0  # set by the pool (its own, or the destination's connectionPool)
        self.on_lost = lambda conn: None  # the pool forgets the connection
        self.tunnel = None  # after a 101: the client connection bytes go to (tunnel.py)
        self.upgraded = False
        self.leftover = b""
        self._waiter: asyncio.Future | None = None  # resolves with the Response
        self._writer: asyncio.Task | None = None
        self._sent = True  # the whole request is written
        self._received = True  # the whole answer has arrived
        self._any = False  # some byte of the answer arrived
        self._head_only = False
        self._status = 0
        self._fields: list = []
        self._head_bytes = 0
        self._interim = False
        self._parts: list[bytes] | None = None
        self._stream: BodyStream | None = None
        self._response: Response | None = None

    # --- the connection -------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time (a fork check).
        self.loop = asyncio.get_running_loop()
        self.flow.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.reusable = False
        self.flow.lost()
        self.on_lost(self)
        if self.tunnel is not None:
            self.tunnel.close()
            return
        if not self._received:
            if self._stream is not None and not self._stream.done and self._delimited_by_close():
                self._stream.finish()  # no length, not chunked: the body ends where the connection does
            else:
                self._fail(UpstreamReset(f"{self.address} closed the connection before answering"
                                         if not self._any else f"{self.address} reset the connection mid-answer"),
                           stale=not self._any and self.requests > 1)
        if self._writer is not None:
            self._writer.cancel()

    def eof_received(self):
        return self.tunnel_eof()

    def close(self) -> None:
        self.reusable = False
        if not self.closed:
            self.closed = True
            self.transport.close()

    # --- one request and its answer --------------------------------------------------

    async def exchange(self, request: Request, head: bytes, body) -> Response:
        """Send `head` and `body` (bytes, or an async iterator streamed chunked) and await the answer."""
        loop = self.loop
        self.requests += 1
        self._waiter = waiter = loop.create_future()
        self._received = self._any = False
        self._head_only = request.method == "HEAD"
        if isinstance(body, bytes):
            self.transport.write(head + body if body else head)
        else:
            self._sent = False
            self.transport.write(head)
            self._writer = loop.create_task(self._send_body(body))
        try:
            return await waiter
        except BaseException:
            self.close()  # a cancelled or failed exchange leaves the connection in an unknown state
            if self._writer is not None:
                self._writer.cancel()
            raise

    async def _send_body(self, body) -> None:
        write, flow = self.transport.write, self.flow
        try:
            async for piece in body:
                if piece and not self.closed:
                    write(wire.chunk(piece))
                    await flow.drain()
            if not self.closed:
                write(wire.LAST_CHUNK)
            self._sent = True
            self._maybe_idle()
        except MeshError as e:  # the client's body broke off (a BadRequest from the stream)
            self._fail(e)
            self.close()
        except (ConnectionError, OSError) as e:
            self._fail(UpstreamReset(f"{self.address} closed the connection while the body was sent: {e}"))
            self.close()

    def _fail(self, error: Exception, stale: bool = False) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if stale:
                error = StaleConnection(error.reason)
            waiter.set_exception(error)
        elif self._stream is not None and not self._stream.done:
            self._stream.fail(error)

    def _delimited_by_close(self) -> bool:
        response = self._response
        return (response is not None and "content-length" not in response.headers
                and "chunked" not in response.headers.get("transfer-encoding", "").lower())

    def _maybe_idle(self) -> None:
        if self._received and self.requests == 1 and self.tls is not None and hasattr(self.tls, "remember"):
            # TLS 1.3 sends its session ticket after the handshake: by the first answer it has arrived.
            self.tls.remember(self.server_hostname, self.transport.get_extra_info("ssl_object"))
        if self._sent and self._received and self.reusable and not self.closed and not self.upgraded:
            self.on_idle(self)

    def _releaser(self):
        """For a streamed answer: once it is handed on (or dropped), an unfinished one closes the connection."""
        number = self.requests

        async def release() -> None:
            if self.requests == number and not self._received:
                self.close()
        return release

    # --- reading the answer ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        if self.upgraded:
            self.leftover += data
            return
        self._any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            offset = e.args[0] if e.args else len(data)
            self.upgraded = True
            self.reusable = False
            self.leftover = data[offset:]
            self.flow.pause("upgrade")
            if self._status == 101:
                self._resolve(Response(101, self._headers(), b"", tunnel=self))
            else:
                self._fail(BadUpstreamResponse(f"{self.address} switched protocols without a 101"))
                self.close()
        except httptools.HttpParserCallbackError as e:
            cause = e.__cause__ or e.__context__
            reason = str(cause) if isinstance(cause, _TooLarge) else f"{type(cause).__name__}: {cause}"
            self._fail(BadUpstreamResponse(f"{self.address} answered with {reason}"))
            self.close()
        except httptools.HttpParserError as e:
            self._fail(BadUpstreamResponse(f"{self.address} answered with something that is not HTTP/1.1: {e}"))
            self.close()

    def on_message_begin(self) -> None:
        self._fields = []
        self._head_bytes = 0

    def on_status(self, status: bytes) -> None:
        self._count(len(status) + 13)

    def on_header(self, name: bytes, value: bytes) -> None:
        fields = self._fields
        fields.append((name, value))
        limits = self.limits
        if len(fields) > limits.max_header_fields:
            raise _TooLarge(f"more than {limits.max_header_fields} response header fields")
        self._head_bytes += len(name) + len(value) + 4  # _count(), inlined: this runs for every field
        if self._head_bytes > limits.max_header_bytes:
            raise _TooLarge(f"response headers over {limits.max_header_bytes // 1024} KiB")

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self.limits.max_header_bytes:
            raise _TooLarge(f"response headers over {self.limits.max_header_bytes // 1024} KiB")

    def _headers(self) -> CIMultiDict:
        return CIMultiDict([(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._fields])

    def on_headers_complete(self) -> None:
        status = self._status = self.parser.get_status_code()
        if status == 101:
            self.reusable = False  # HTTP ends here: the connection becomes a tunnel or is closed
            return
        if status < 200:
            self._interim = True  # 100 Continue and friends: the real answer follows
            return
        headers = self._headers()
        if not self.parser.should_keep_alive():
            self.reusable = False
        if self._head_only or status in NO_BODY_STATUSES:
            if self._head_only:
                self.reusable = False  # llhttp would wait for the body HEAD never gets
            self._received = True
            self._resolve(Response(status, headers, b""))
            self._maybe_idle()
            return
        length = headers.get("content-length")
        if length is not None and int(length) <= SMALL_BODY:
            self._parts = []
            self._response = Response(status, headers, b"")
            return
        self._stream = BodyStream(self.flow)
        self._response = Response(status, headers, self._stream, release=self._releaser())
        if self._delimited_by_close():
            self.reusable = False
        self._resolve(self._response)

    def on_body(self, data: bytes) -> None:
        if self._parts is not None:
            self._parts.append(data)
        elif self._stream is not None:
            self._stream.feed(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._received:
            return
        self._received = True
        if self._parts is not None:
            response, parts = self._response, self._parts
            self._parts = None
            response.body = b"".join(parts)
            self._resolve(response)
        elif self._stream is not None:
            self._stream.finish()
        self._stream = None
        self._response = None
        self._maybe_idle()

    def _resolve(self, response: Response) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
