"""Istio's default inbound retry, through a real inbound listener to a real app on loopback.

Istio (1.24 and later) puts `retry_on: reset-before-request, num_retries: 2`
on every sidecar's inbound route (route.go BuildDefaultHTTPInboundRoute): an
app that refused the connection is tried again, one that received the
request is not. The inbound sidecar here is the real one, assembled in
process (listener, edge, InboundRouter, pool) so the test can hold the
retry's backoff: the app starts listening during the first backoff, which
makes "refused once, then accepted" deterministic without a timed race.
"""

import asyncio
import socket
import struct

import pytest
from aiohttp import web

from minimesh.proxy.discovery import ConfigHolder
from minimesh.proxy.edge import Edge
from minimesh.proxy.inbound.stack import InboundRouter
from minimesh.proxy.observe.stats import Stats
from minimesh.proxy.transport.listener import Listener
from minimesh.proxy.transport.pool import UpstreamPool
from tests.support.control import wait_for
from tests.support.mesh import client_session
from tests.support.shop import free_port

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio]


class Backoff:
    """The retry's sleep: notes each wait, runs `first` (once) at the first, then waits for real."""

    def __init__(self, first=None):
        self.waits: list[float] = []
        self.first = first

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.first is not None:
            first, self.first = self.first, None
            await first()
        await asyncio.sleep(seconds)


class RecordingEdge(Edge):
    """The inbound's edge, keeping each finished request's journey."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.journeys: list = []

    def done(self, request, status):
        self.journeys.append((status, request.journey))
        super().done(request, status)


async def inbound_sidecar(app_port: int, backoff: Backoff):
    pool = UpstreamPool()
    router = InboundRouter(ConfigHolder(), pool, "shop", app_port, sleep=backoff)
    edge = RecordingEdge("inbound", router, Stats(), {"service": "shop", "version": "v1", "instance": "shop-v1-0"})
    listener = await Listener("inbound", edge, "127.0.0.1", 0).start()
    return listener, edge


async def finished(edge: RecordingEdge, n: int):
    """The edge's done() may come just after the answer: poll for it, with a deadline."""
    await wait_for(lambda: len(edge.journeys) >= n, 5, interval=0.01, what="the inbound to finish the request")
    return edge.journeys[n - 1]


async def serve_app(port: int, seen: list):
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.method, body))
        return web.Response(text=f"got {len(body)} bytes")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def start_app(port: int, seen: list, runners: list) -> None:
    runners.append(await serve_app(port, seen))


async def test_an_app_that_refused_the_first_connect_gets_the_post_on_the_retry():
    port = free_port()  # nothing listens yet: the first connect is refused
    seen: list = []
    runners: list = []
    backoff = Backoff(first=lambda: start_app(port, seen, runners))
    listener, edge = await inbound_sidecar(port, backoff)
    try:
        async with client_session() as http, \
                http.post(f"http://127.0.0.1:{listener.port}/orders", data=b"x" * 1000) as r:
            assert r.status == 200 and await r.text() == "got 1000 bytes"
        # reset-before-request covers a POST: the app never saw the first try, and sees the request once.
        assert seen == [("POST", b"x" * 1000)]
        status, journey = await finished(edge, 1)
        assert status == 200 and journey.flags == []
        assert [(a.status, (a.error or "")[:2]) for a in journey.attempts] == [(None, "UF"), (200, "")]
        assert len(backoff.waits) == 1 and 0 <= backoff.waits[0] <= 0.025  # Envoy's first backoff: [0, 25 ms]

        # A chunked body the proxy streams (nobody had started reading it) is sent on the retry too.
        port2 = free_port()
        seen.clear()
        listener2, edge2 = await inbound_sidecar(port2, Backoff(first=lambda: start_app(port2, seen, runners)))

        async def chunks():
            for _ in range(3):
                yield b"y" * 500

        try:
            async with client_session() as http, \
                    http.post(f"http://127.0.0.1:{listener2.port}/orders", data=chunks()) as r:
                assert r.status == 200 and await r.text() == "got 1500 bytes"
            assert seen == [("POST", b"y" * 1500)]
            status, journey = await finished(edge2, 1)
            assert len(journey.attempts) == 2
        finally:
            await listener2.stop()
    finally:
        await listener.stop()
        for runner in runners:
            await runner.cleanup()


async def test_a_dead_app_is_503_urx_uf_after_two_retries():
    backoff = Backoff()
    listener, edge = await inbound_sidecar(free_port(), backoff)
    try:
        async with client_session() as http, http.get(f"http://127.0.0.1:{listener.port}/items") as r:
            assert r.status == 503
            assert r.headers["x-minimesh-error"].startswith("UF (connect, inbound)")
        status, journey = await finished(edge, 1)
        assert status == 503 and journey.flags == ["URX", "UF"]
        assert [(a.error or "")[:2] for a in journey.attempts] == ["UF", "UF", "UF"]
        # Envoy's fully jittered backoff: [0, 25 ms] before the first retry, [0, 75 ms] before the second.
        assert len(backoff.waits) == 2 and backoff.waits[0] <= 0.025 and backoff.waits[1] <= 0.075
    finally:
        await listener.stop()


async def test_a_request_the_app_received_and_then_reset_is_not_retried():
    connections: list[bytes] = []

    async def reset_after_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        connections.append(await reader.readuntil(b"\r\n\r\n"))  # the request reached the app
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()

    app = await asyncio.start_server(reset_after_reading, "127.0.0.1", 0)
    backoff = Backoff()
    listener, edge = await inbound_sidecar(app.sockets[0].getsockname()[1], backoff)
    try:
        async with client_session() as http, http.post(f"http://127.0.0.1:{listener.port}/pay", data=b"card") as r:
            assert r.status == 503
            assert r.headers["x-minimesh-error"].startswith("UC (connect, inbound)")
        status, journey = await finished(edge, 1)
        assert status == 503 and journey.flags == ["UC"]
        # One connection, one request: not reset-before-request, so the charge is not sent twice.
        assert len(connections) == 1 and connections[0].startswith(b"POST /pay ")
        assert backoff.waits == [] and journey.attempts == []
    finally:
        await listener.stop()
        app.close()
        await app.wait_closed()
