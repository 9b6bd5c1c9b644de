"""A listening socket that looks at each connection's first byte before speaking.

PERMISSIVE mTLS means one port takes both mutual TLS and plaintext HTTP.
The two are told apart by the first byte the client sends: every TLS
connection opens with a handshake record, type 0x16 (RFC 8446 §5.1); an
HTTP request opens with a method name, a letter. Envoy does the same with
its "tls_inspector" listener filter.

The byte is *peeked* (`recv(MSG_PEEK)`), not read: it stays in the socket,
so whatever takes over next — the TLS handshake, or the HTTP parser — sees
the connection from its very first byte. The decision comes from a policy
(mtls.py: InboundSecurity), asked afresh for every connection, so a new
PeerAuthentication or a renewed certificate applies to the next connection
while open ones carry on as they began.

Then the socket is handed to the event loop with `connect_accepted_socket`,
with or without the server's TLS context; the protocol on top is the same
HTTP server connection (http_server.py) as on a plain listener. A client
that sends nothing within the header timeout is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from enum import Enum

from minimesh.proxy.transport.tls import TLS_HANDSHAKE

log = logging.getLogger("minimesh.proxy")

HANDSHAKE_TIMEOUT = 10.0


class Action(Enum):
    """What becomes of a new connection (inbound/peer_auth.py decides it from the PeerAuthentication mode)."""
    MTLS = "mtls"
    PLAINTEXT = "plaintext"
    REFUSE = "refuse"


async def peek_first_byte(loop: asyncio.AbstractEventLoop, conn: socket.socket, timeout: float) -> int | None:
    """The first byte the client sent, left in the socket; None if it closed first."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                data = conn.recv(1, socket.MSG_PEEK)
                return data[0] if data else None
            except BlockingIOError:
                pass
            readable = loop.create_future()
            loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
            try:
                await readable
            finally:
                loop.remove_reader(conn.fileno())


class SniffingServer:
    """Accepts connections, sorts each by `policy(is_tls) -> (Action, ctx, mode)`, runs `factory()` on it;
    a refused one is logged with `policy.why_refused(is_tls, mode, peer)` (mtls.py, gateway_tls.py)."""

    def __init__(self, factory, host: str, port: int, policy, *, backlog: int = 1024,
                 name: str = "inbound", limits=None):
        self._factory, self._host, self._port, self._policy, self._label = factory, host, port, policy, name
        self._backlog = backlog
        self._first_byte_timeout = limits.header_timeout if limits is not None else 10.0
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1] if self._sock else self._port

    async def start(self) -> "SniffingServer":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(self._backlog)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock
        self._accepting = asyncio.create_task(self._accept_forever(), name=f"{self._label} accept")
        return self

    def close(self) -> None:
        """Stop accepting (connections already handed over carry on)."""
        if self._accepting is not None:
            self._accepting.cancel()
        for task in list(self._pending):
            task.cancel()
        if self._sock is not None:
            self._sock.close()

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(self._sock)
            except OSError as e:  # e.g. EMFILE: out of file descriptors; do not spin
                log.warning("%s: accept failed: %s", self._label, e)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._hand_over(loop, conn, f"{peer[0]}:{peer[1]}"))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _hand_over(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, peer: str) -> None:
        conn.setblocking(False)
        try:
            first = await peek_first_byte(loop, conn, self._first_byte_timeout)
            if first is None:
                conn.close()
                return
            is_tls = first == TLS_HANDSHAKE
            action, context, mode = self._policy(is_tls)
            if action is Action.REFUSE:
                log.info("%s: refused %s", self._label, self._policy.why_refused(is_tls, mode, peer))
                conn.close()
                return
            factory = self._factory
            if action is Action.MTLS:
                await loop.connect_accepted_socket(factory, conn, ssl=context,
                                                   ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
            else:
                await loop.connect_accepted_socket(factory, conn)
        except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError: a failed handshake
            log.info("%s: refused a connection from %s: %s", self._label, peer, _why(e))
            conn.close()


def _why(e: Exception) -> str:
    reason = getattr(e, "reason", None)
    detail = getattr(e, "verify_message", None)  # why the peer's certificate did not verify
    if reason:
        return f"TLS handshake failed ({reason}{': ' + detail if detail else ''})"
    return str(e) or type(e).__name__
