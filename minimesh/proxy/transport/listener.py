"""The server half of the transport boundary: a listening socket that hands minimesh
`Request`s to a layer stack and writes its `Response`s back.

No layer sees a socket or a parser: each connection is an `http_server.ServerConnection`
that parses with llhttp and asks `handler.respond(request)` for the answer (the
listener's `Edge`, edge.py), then tells it `handler.done(request, status)` once
the answer is written. The listener owns what is shared by its connections:
their count (at most `limits.max_connections`; the next is closed and counted),
the counters `/stats` shows, and the `Watchdog` that closes connections past
their deadlines (limits.py).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections import Counter

from minimesh.errors import UserError
from minimesh.proxy.transport.http_server import ServerConnection
from minimesh.proxy.transport.limits import DEFAULT_LIMITS, Limits
from minimesh.proxy.transport.sniffing import SniffingServer

log = logging.getLogger("minimesh.proxy")

SHUTDOWN_GRACE = 5.0  # seconds in-flight requests get to finish when the listener stops


class Watchdog:
    """One sweep a few times a second over a listener's connections: each checks its own deadlines.

    A listener with no connection has no deadline to watch: its watchdog
    sleeps until one is made (an idle sidecar is not woken for nothing).
    """

    def __init__(self, listener: "Listener", sleep=asyncio.sleep):
        self.listener, self.sleep = listener, sleep

    @staticmethod
    def timed_out(conn: ServerConnection, now: float) -> str | None:
        """Which deadline of `conn` (if any) has passed; such a connection is answered 408 or closed."""
        limits = conn.limits
        if conn.closed or conn.lingering:
            return None
        if conn.head_deadline is not None and now >= conn.head_deadline:
            conn.head_deadline = None
            conn.refuse_late(f"request headers not complete within {limits.header_timeout:g}s")
            return "header_timeout"
        if conn.active is None and not conn.queue and conn.tunnel is None:
            if conn.idle_deadline is not None and now >= conn.idle_deadline:
                conn.close()
                return "idle_timeout"
        elif now - conn.last_activity >= limits.stream_idle_timeout:
            conn.close()
            return "stream_idle_timeout"
        return None

    def sweep(self, now: float) -> None:
        listener = self.listener
        for conn in list(listener.connections):
            try:
                why = self.timed_out(conn, now)
            except Exception as e:  # noqa: BLE001 - one connection's trouble must not stop the watchdog
                log.error("%s: closing a connection past its deadline failed: %s: %s", listener.name,
                          type(e).__name__, e)
                conn.close()
                continue
            if why is not None:
                listener.counters[why] += 1

    async def run(self) -> None:
        listener = self.listener
        interval = listener.limits.sweep_interval()
        while True:
            if not listener.connections:  # no deadline can pass: sleep until a connection comes
                listener.watched.clear()
                listener.watchdog_asleep = True
                await listener.watched.wait()
            await self.sleep(interval)
            self.sweep(listener.time())


class Listener:
    """One listening socket serving `handler` (an Edge: respond(request), done(request, status)).

    With a `security` policy (mtls.py) each connection is first sorted by its
    first byte into mTLS, plaintext or refused (sniffing.py).
    """

    def __init__(self, name: str, handler, host: str, port: int, security=None,
                 limits: Limits = DEFAULT_LIMITS, clock=None, tls_server_of=None):
        self.name, self.handler, self.host, self.requested_port = name, handler, host, port
        # The gateway's HTTPS port: TLS from outside the mesh; which Gateway server a connection got (gateway_tls.py).
        self.tls_server_of = tls_server_of
        self.direction = getattr(handler, "direction", name)
        self.security = security
        self.limits = limits
        self.port = None
        self.connections: set[ServerConnection] = set()
        self.counters: Counter = Counter()
        self._clock = clock
        self.time = clock
        self._server = None
        self._watchdog: asyncio.Task | None = None
        self.watched = asyncio.Event()  # set by the first connection while the watchdog sleeps
        self.watchdog_asleep = False

    async def start(self) -> "Listener":
        loop = asyncio.get_running_loop()
        if self._clock is None:
            self.time = loop.time
        factory = lambda: ServerConnection(self)  # noqa: E731
        try:
            if self.security is not None:
                self._server = await SniffingServer(factory, self.host, self.requested_port, self.security,
                                                    name=self.name, limits=self.limits).start()
                self.port = self._server.port
            else:
                self._server = await loop.create_server(factory, self.host, self.requested_port, backlog=1024,
                                                        reuse_address=True)
                self.port = self._server.sockets[0].getsockname()[1]
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"port {self.requested_port} is already in use ({self.name}); "
                                f"stop whatever holds it or choose another port") from e
            raise
        self._watchdog = loop.create_task(Watchdog(self).run(), name=f"{self.name} watchdog")
        log.info("%s listening on %s:%s", self.name, self.host, self.port)
        return self

    def stats(self) -> dict:
        return {"open": len(self.connections), **self.counters}

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Requests in flight get a moment to finish; idle connections close now.
        deadline = asyncio.get_running_loop().time() + SHUTDOWN_GRACE
        for conn in list(self.connections):
            if conn.active is None and not conn.queue:
                conn.close()
        while any(c.active is not None for c in self.connections) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        self._server = None
