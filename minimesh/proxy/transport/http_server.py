"""The server side of the data plane's HTTP/1.1: one asyncio Protocol per downstream connection.

Theory of operation. Bytes arrive in `data_received` and go straight to
llhttp (`httptools.HttpRequestParser`), which calls back as it finds the
request line, each header, the end of the head, body pieces and the end of
the message. At the end of a head the connection makes a minimesh `Request`
(message.py) and queues it; requests are answered one at a time, in the
order they came (HTTP/1.1 pipelining, RFC 9112 §9.3.2), each by a task that
runs the layer stack (`handler.respond`) and writes the `Response` back.

- **Bodies** up to 1 MiB of known length are collected whole (the retry layer
  may send them again); larger or chunked ones stream (body.py, request_head.py).
- **Limits** (limits.py) are checked as the head is parsed: the request line
  and fields are counted byte by byte, so a 1 MiB header is refused after
  60 KiB — nothing past the limit is kept. Timeouts are deadlines on the
  connection, looked at by the listener's `Watchdog` a few times a second.
- **Errors.** A malformed request is answered 400 (a too-large head 431)
  once every valid request before it on the connection has its answer,
  then the connection closes.
- **Expect: 100-continue** is answered by the sidecar itself, as Envoy does.
- **Answers** are framed by response_head.py (length, chunked or to the end of
  the connection; keep-alive or close); a body in hand goes out with its head
  in one write.
- **Upgrades** (WebSocket): the request goes upstream with its `Upgrade`
  header; if the answer is 101 the two connections are spliced (tunnel.py)
  and bytes flow untouched both ways.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Coroutine

import httptools
from multidict import CIMultiDict

from minimesh.errors import BadRequest
from minimesh.proxy.transport import wire
from minimesh.proxy.transport.flow import Flow
from minimesh.proxy.message import Journey
from minimesh.proxy.transport.request_head import Exchange, Refuse, exchange_for
from minimesh.proxy.transport.response_head import frame
from minimesh.proxy.transport.tls import peer_identity, peer_in_trust_domain
from minimesh.proxy.transport.tunnel import TunnelEnd, splice

log = logging.getLogger("minimesh.proxy")

LINGER = 2.0  # seconds a refused connection is read (and ignored) before it is closed
HEAD_SLACK = 128 * 1024  # raw bytes a head may span beyond the limit (one read's worth, twice)


class ServerConnection(TunnelEnd, asyncio.Protocol):
    def __init__(self, listener):
        self.listener = listener  # handler, limits, direction, connections, counters (listener.py)
        self.report_first = getattr(listener.handler, "report_first", True)  # count before the answer? (edge.py)
        self.limits = listener.limits
        self.time = listener.time
        self.flow = Flow()
        self.transport = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Exchange] = deque()  # parsed, not yet answered; queue[0] may be in flight
        self.active: asyncio.Task | None = None
        self.parsing: Exchange | None = None  # the request whose body is arriving
        self.error: Refuse | None = None  # answer it once the queue is empty, then close
        self.tunnel = None  # after a 101: the upstream connection
        self.closed = False
        self.lingering = False  # answered an error; reading only to drop what still comes
        self.client = ""
        self.peer_identity: str | None = None  # the SPIFFE ID the client proved, on mTLS
        self.mtls = False
        self.tls_server = None  # the gateway's HTTPS port: the Gateway server the client's SNI chose
        # Deadlines (the listener's Watchdog looks at them).
        self.head_deadline: float | None = None
        self.idle_deadline: float | None = None
        self.last_activity = 0.0
        self.started = False  # some bytes of the current request have arrived
        # The head being parsed.
        self._in_head = True
        self._head_raw = 0
        self._url: list[bytes] = []
        self._fields: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0

    # --- the connection ---------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time (a fork check).
        self.loop = asyncio.get_running_loop()
        self.flow.transport = transport
        listener = self.listener
        if len(listener.connections) >= self.limits.max_connections:
            listener.counters["overflow"] += 1
            self.closed = True
            transport.abort()
            return
        listener.connections.add(self)
        if listener.watchdog_asleep:  # the watchdog slept: there is a deadline to watch again
            listener.watchdog_asleep = False
            listener.watched.set()
        listener.counters["accepted"] += 1
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and listener.tls_server_of is not None:  # the gateway's HTTPS port
            self.tls_server = listener.tls_server_of(ssl_object)  # None: MUTUAL, and no client certificate
            refused = self.tls_server is None
        elif ssl_object is not None:
            self.mtls, self.peer_identity = True, peer_identity(ssl_object)
            refused = not peer_in_trust_domain(self.peer_identity, transport)  # issue 15: another trust domain
        if ssl_object is not None and refused:
            self.closed = True
            listener.connections.discard(self)
            transport.abort()
            return
        now = self.time()
        self.last_activity = now
        self.head_deadline = now + self.limits.header_timeout

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.flow.lost()
        self.listener.connections.discard(self)
        if self.parsing is not None and self.parsing.stream is not None:
            self.parsing.stream.fail(ConnectionResetError("the client closed the connection mid-body"))
        if self.tunnel is not None:
            self.tunnel.transport.close()

    def eof_received(self):
        if self.tunnel is not None:
            return self.tunnel_eof()
        if self.queue and not self.lingering:
            # The client finished sending (a half-close) but waits for its answers: give them, then close.
            for exchange in self.queue:
                exchange.keep_alive = False
            if self.parsing is not None and self.parsing.stream is not None:
                self.parsing.stream.fail(ConnectionResetError("the client stopped sending mid-body"))
            return True
        return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.time()
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        if self.error is not None or self.closed or self.lingering:
            return
        if self._in_head:
            self._head_raw += len(data)
            if self._head_raw > self.limits.max_header_bytes + HEAD_SLACK:
                self._refuse(Refuse(431, "request headers over the limit"))
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self._upgraded(data[e.args[0]:] if e.args else b"")
        except httptools.HttpParserCallbackError as e:
            cause = e.__cause__ or e.__context__
            if isinstance(cause, Refuse):
                self._refuse(cause)
            else:
                log.error("%s: parsing a request failed: %s: %s", self.listener.name, type(cause).__name__, cause)
                self._refuse(Refuse(500, f"minimesh could not read this request ({type(cause).__name__})"))
        except httptools.HttpParserError as e:
            log.info("%s: malformed request from %s: %s", self.listener.name, self.client, e)
            self._refuse(Refuse(400, f"malformed request: {e}"))

    # --- parser callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url.clear()
        self._fields = []
        self._head_bytes = 0
        self.started = True
        self.idle_deadline = None
        if self.head_deadline is None:
            self.head_deadline = self.time() + self.limits.header_timeout

    def on_url(self, part: bytes) -> None:
        self._url.append(part)
        self._count(len(part))

    def on_header(self, name: bytes, value: bytes) -> None:
        fields = self._fields
        fields.append((name, value))
        limits = self.limits
        if len(fields) > limits.max_header_fields:
            raise Refuse(431, f"more than {limits.max_header_fields} request header fields")
        self._head_bytes += len(name) + len(value) + 4  # _count(), inlined: this runs for every field
        if self._head_bytes > limits.max_header_bytes:
            raise Refuse(431, f"request headers over {limits.max_header_bytes // 1024} KiB")

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self.limits.max_header_bytes:
            raise Refuse(431, f"request headers over {self.limits.max_header_bytes // 1024} KiB")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_raw = 0
        self.head_deadline = None
        parser = self.parser
        exchange = exchange_for(parser.get_method().decode("ascii"), b"".join(self._url).decode("latin-1"),
                                self._fields, Journey(self.listener.direction), self.client,
                                self.peer_identity if self.mtls else None, self.mtls, parser.should_keep_alive(),
                                parser.get_http_version() == "1.0", parser.should_upgrade(), self.flow)
        exchange.request.journey.tls_server = self.tls_server
        self.parsing = exchange
        self.queue.append(exchange)
        self._next()

    def on_body(self, data: bytes) -> None:
        exchange = self.parsing
        if exchange.stream is not None:
            exchange.stream.feed(data)
        elif exchange.parts is not None:
            exchange.parts.append(data)

    def on_message_complete(self) -> None:
        exchange = self.parsing
        self.parsing = None
        self._in_head = True
        self.started = False
        if exchange is None:
            return
        exchange.complete = True
        if exchange.stream is not None:
            exchange.stream.finish()
        elif exchange.parts:
            exchange.request.body = b"".join(exchange.parts)
        if len(self.queue) > 1:
            self.flow.pause("pipeline")  # answer what we have before reading more
        self._next()

    # --- answering, in order ---------------------------------------------------------

    def _next(self) -> None:
        if self.active is not None or self.closed or self.tunnel is not None:
            return
        if not self.queue:
            if self.error is not None:
                self._answer_error()
            return
        exchange = self.queue[0]
        if exchange.expect and not exchange.complete and not exchange.continued:
            exchange.continued = True
            self.transport.write(wire.CONTINUE)
        if exchange.parts is not None and not exchange.complete:
            return  # a small body: wait for all of it
        self.active = self.loop.create_task(self._serve(exchange))

    async def _serve(self, exchange: Exchange) -> None:
        handler = self.listener.handler
        request = exchange.request
        response = await handler.respond(request)
        status = response.status
        keep = False
        try:
            written, sending = self._write(exchange, response)
            if sending is not None:  # a streamed body: the coroutine that sends it
                written = await sending
            keep = written
        except (ConnectionError, RuntimeError) as e:  # the client went away mid-answer
            log.debug("%s: answer to %s cut short: %s", self.listener.name, self.client, e)
        except Exception as e:  # noqa: BLE001 - an answer half-written cannot become a 500 any more
            log.error("%s: writing an answer failed: %s: %s", self.listener.name, type(e).__name__, e)
        finally:
            if response.release is not None:
                await response.discard()
        self._report(exchange, status)
        self.queue.popleft()
        self.active = None
        if response.tunnel is not None and status == 101 and not self.closed:
            splice(self, response.tunnel, exchange.leftover)
            return
        if not keep or self.closed:
            self.close()
            return
        if not self.queue:
            self.idle_deadline = self.time() + self.limits.idle_timeout
        self.flow.resume("pipeline")
        self._next()

    def _report(self, exchange: Exchange, status: int) -> None:
        """Tell the handler the answer is out (once): it counts and logs the request."""
        if exchange.reported:
            return
        exchange.reported = True
        try:
            self.listener.handler.done(exchange.request, status)
        except Exception as e:  # noqa: BLE001 - counting must never take the connection down
            log.error("%s: reporting a request failed: %s: %s", self.listener.name, type(e).__name__, e)

    def _write(self, exchange: Exchange, response) -> tuple[bool, Coroutine | None]:
        """Write `response`: (can the connection carry another request, None) when that is done.

        A body in hand goes out at once, with the head in one write, and no
        coroutine is made for it; for a streamed body the second item is the
        coroutine that sends it, whose result replaces the first.
        """
        head, keep, chunked, bodiless = frame(exchange, response)  # response_head.py: the decision
        status, body = response.status, response.body
        if self.closed:
            raise ConnectionResetError("the client closed the connection")
        if isinstance(body, bytes):
            if self.report_first:  # an access log's line is out before the answer; else counted in _serve
                self._report(exchange, status)
            self.transport.write(head + body if body and not bodiless else head)
            return keep, None
        self.transport.write(head)
        if bodiless:
            return keep, None
        return keep, self._stream(body, chunked, keep)

    async def _stream(self, body, chunked: bool, keep: bool) -> bool:
        write, flow = self.transport.write, self.flow
        async for piece in body:
            if not piece:
                continue
            write(wire.chunk(piece) if chunked else piece)
            self.last_activity = self.time()
            await flow.drain()
        if chunked:
            write(wire.LAST_CHUNK)
        return keep

    # --- what cannot be answered normally --------------------------------------------

    def _refuse(self, refusal: Refuse) -> None:
        """Stop reading; answer `refusal` after the requests before it, then close."""
        self.flow.pause("refused")
        exchange = self.parsing
        self.parsing = None
        if exchange is not None and exchange in self.queue:
            answering = self.active is not None and self.queue[0] is exchange
            if exchange.stream is not None and (exchange.stream.taken or answering):
                # Its answer is already being made: the body it is sending fails, and the error
                # comes back as this request's answer (a BadRequest from the stream).
                exchange.stream.fail(BadRequest(refusal.text))
                exchange.keep_alive = False
            else:
                self.queue.remove(exchange)
        self.error = refusal
        if self.active is None:
            self._next()

    def _answer_error(self) -> None:
        if self.lingering:
            return
        refusal, self.error = self.error, None
        text = f"{refusal.status} {wire.REASONS.get(refusal.status, '')}: {refusal.text}\n".encode()
        headers = CIMultiDict({"content-type": "text/plain; charset=utf-8",
                               "x-minimesh-error": f"DPE (listener, {self.listener.direction}): {refusal.text}"})
        head = wire.response_head(refusal.status, headers, f"Content-Length: {len(text)}\r\nConnection: close\r\n")
        self.listener.counters[f"refused_{refusal.status}"] += 1
        if self.closed:
            return
        self.transport.write(head + text)
        self._linger()

    def _linger(self) -> None:
        """Close gently: stop writing, read and drop what the client is still sending, then close.

        Closing a socket with unread bytes in it makes the kernel send a reset,
        which can destroy the answer before the client has read it (RFC 9112 §9.6).
        """
        self.lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume("refused")
        self.flow.resume("pipeline")
        self.flow.resume("upgrade")
        asyncio.get_running_loop().call_later(LINGER, self.close)

    def _upgraded(self, leftover: bytes) -> None:
        """The parser stopped at an Upgrade request: what follows belongs to the tunnel."""
        self.flow.pause("upgrade")  # nothing more is read until the upstream said 101 (or did not)
        exchange = self.queue[-1] if self.queue else None
        if exchange is not None:
            exchange.leftover = leftover
            exchange.keep_alive = False  # whatever the answer, this connection carries no more requests
            if not exchange.complete:
                self.on_message_complete()

    def refuse_late(self, text: str) -> None:
        """The head did not arrive in time (the Watchdog's call): 408 if it began, else just close."""
        if self.started and self.active is None and self.error is None:
            self.error = Refuse(408, text)
            self._answer_error()
        else:
            self.close()
