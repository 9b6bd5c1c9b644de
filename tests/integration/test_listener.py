"""The transport's server half in this process, on real sockets: pipelining, refusals, deadlines, limits.

A Listener (minimesh/proxy/transport/listener.py) with a tiny handler instead of a
sidecar's layer stack, so each limit can be set small (a 0.3 s header
timeout, 3 connections) and each test takes well under a second.
"""

import asyncio
import logging

import pytest
from multidict import CIMultiDict

from minimesh.proxy.transport.limits import Limits
from minimesh.proxy.transport.listener import Listener
from minimesh.proxy.message import Response
from tests.support.control import wait_for

pytestmark = pytest.mark.timeout(30)


class Handler:
    """Answers GET /boom with an exception, /slow after `delay`, anything else with its path."""

    direction = "outbound"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.done_calls = []

    async def respond(self, request):
        from minimesh.proxy.edge import Edge
        edge = Edge("outbound", self._route, _Stats(), {})
        return await edge.respond(request)

    def _route(self, request):
        async def stack(request):
            if request.path == "/boom":
                raise RuntimeError("disk full")
            if request.path == "/slow":
                await asyncio.sleep(self.delay)
            body = request.body if isinstance(request.body, bytes) else b"".join([c async for c in request.body])
            return Response(200, CIMultiDict({"x-path": request.path}), request.path.encode() + body)
        return stack

    def done(self, request, status):
        self.done_calls.append((request.path, status))


class _Stats:
    def record(self, *args):
        pass


async def start(limits=Limits(), delay=0.0) -> Listener:
    return await Listener("outbound", Handler(delay), "127.0.0.1", 0, limits=limits).start()


async def read_answer(reader) -> tuple[int, dict, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 5)
    return int(lines[0].split()[1]), headers, body


async def test_pipelined_requests_are_answered_in_order_and_a_bad_one_closes_after_them():
    listener = await start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        # Three requests in one write: two valid, then garbage.
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
                     b"GARBAGE\r\n\r\n")
        answers = [await read_answer(reader) for _ in range(3)]
        assert [(s, b) for s, _, b in answers[:2]] == [(200, b"/a"), (200, b"/bxyz")]
        assert answers[2][0] == 400 and answers[2][1]["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # then the connection closes
    finally:
        await listener.stop()


@pytest.mark.parametrize("line, status", [(b"CONNECT example.com:443 HTTP/1.1", 405), (b"OPTIONS * HTTP/1.1", 400)])
async def test_connect_and_options_star_are_refused(line, status):
    listener = await start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(line + b"\r\nHost: example.com:443\r\n\r\n")
        got, headers, body = await read_answer(reader)
        assert got == status and "x-minimesh-error" in headers and b"Traceback" not in body
        # The listener carries on.
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader))[0] == 200
    finally:
        await listener.stop()


async def test_an_unexpected_error_is_a_500_with_x_minimesh_error_and_one_log_line(caplog):
    listener = await start()
    try:
        with caplog.at_level(logging.INFO, logger="minimesh.proxy"):
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = await read_answer(reader)
        assert status == 500
        assert headers["x-minimesh-error"].startswith("IE (proxy, outbound): RuntimeError: disk full")
        assert b"Traceback" not in body
        [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "disk full" in line.getMessage() and line.exc_info is None
        # The same connection serves the next request.
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader))[0] == 200
    finally:
        await listener.stop()


async def test_headers_not_complete_by_the_deadline_are_408_and_closed():
    listener = await start(Limits(header_timeout=0.3))
    try:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
        started = loop.time()
        status, headers, _ = await read_answer(reader)
        assert status == 408 and headers["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert 0.3 <= loop.time() - started < 1.5
        # A connection that says nothing at all is closed without an answer.
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert listener.counters["header_timeout"] == 2
    finally:
        await listener.stop()


async def test_idle_keep_alive_and_idle_streams_are_closed():
    listener = await start(Limits(idle_timeout=0.3, stream_idle_timeout=0.4), delay=30)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader))[0] == 200
        assert await asyncio.wait_for(reader.read(), 5) == b""  # kept alive, then idle too long
        # A request whose answer does not come, with no bytes moving: closed at the stream idle timeout.
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert listener.counters["idle_timeout"] == 1 and listener.counters["stream_idle_timeout"] == 1
    finally:
        await listener.stop()


async def test_connections_over_the_limit_are_closed_and_counted():
    listener = await start(Limits(max_connections=3))
    try:
        conns = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(5)]
        await asyncio.sleep(0)  # (the answers below are the synchronisation)
        answers = []
        for reader, writer in conns:
            writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answers.append((await read_answer(reader))[0])
            except (asyncio.IncompleteReadError, ConnectionResetError):
                answers.append(None)
        assert answers == [200, 200, 200, None, None]
        assert listener.counters["overflow"] == 2 and listener.stats()["open"] == 3
        for _, writer in conns[:1]:
            writer.close()
        async def freed():
            while len(listener.connections) > 2:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(freed(), 5)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader))[0] == 200  # room again once one closed
    finally:
        await listener.stop()


@pytest.mark.parametrize("access_log", [True, False])
async def test_a_request_is_counted_before_its_answer_is_written_only_when_an_access_log_wants_its_line(access_log):
    """With an access log its line is out before the answer (a reader may look the moment it arrives);
    without one, counting waits until the answer is on its way, off the answer's path."""
    import io
    import socket

    from minimesh.proxy.edge import Edge
    from minimesh.proxy.observe.metrics import MeshMetrics
    from minimesh.proxy.observe.telemetry import AccessLog, RequestTelemetry

    client = None  # the test's end of the connection, made below

    class PeekingEdge(Edge):
        """done() looks at what the client's socket holds at that moment."""
        seen: list = []

        def done(self, request, status):
            try:
                self.seen.append(client.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT))
            except BlockingIOError:
                self.seen.append(b"")
            super().done(request, status)

    log = io.StringIO()
    telemetry = RequestTelemetry({"service": "web", "version": "v1", "instance": "web-v1-0"}, MeshMetrics(), None,
                                 sampling=0.0, access_log=AccessLog(access_log, stream=log))
    edge = PeekingEdge("outbound", Handler()._route, _Stats(), {}, telemetry)
    assert edge.report_first is access_log
    listener = await Listener("outbound", edge, "127.0.0.1", 0).start()
    try:
        client = socket.create_connection(("127.0.0.1", listener.port))
        client.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(client, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"/a"):
            answer += await asyncio.wait_for(loop.sock_recv(client, 65536), 5)
        # done() may come just after the answer: let the loop turn
        [seen] = await wait_for(lambda: PeekingEdge.seen, 1, interval=0.01, what="done()")
        if access_log:
            assert seen == b"" and '"path":"/a"' in log.getvalue()
        else:
            assert seen.startswith(b"HTTP/1.1 200") and log.getvalue() == ""
        client.close()
    finally:
        await listener.stop()


async def test_a_listener_with_no_connection_does_not_wake_its_watchdog_until_one_comes():
    from minimesh.proxy.transport.listener import Watchdog

    listener = await start(Limits(header_timeout=0.2))  # a sweep every 50 ms while there is something to watch
    sweeps = []

    async def counted_sleep(seconds):
        await asyncio.sleep(seconds)
        sweeps.append(seconds)

    watchdog = asyncio.create_task(Watchdog(listener, counted_sleep).run())
    try:
        await asyncio.sleep(0.5)  # ten sweep intervals with no connection
        assert sweeps == [] and listener.watchdog_asleep
        for _ in range(2):  # and it wakes for the next one, after it slept again
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never the rest: closed at the deadline
            assert (await read_answer(reader))[0] == 408
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            assert sweeps  # it woke for this connection, and closed it at its deadline
            await wait_for(lambda: listener.watchdog_asleep, 3, interval=0.01, what="the watchdog asleep again")
            assert not listener.connections
            swept = len(sweeps)
            await asyncio.sleep(0.3)  # six sweep intervals
            assert len(sweeps) == swept  # asleep again
    finally:
        watchdog.cancel()
        await listener.stop()
