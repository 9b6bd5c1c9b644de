"""A destination's idle timeout in the upstream pool, over real sockets with an injected clock.

A real keep-alive HTTP server counts the connections it accepts. The pool is
given a DestinationRule's connectionPool (parsed as `minimesh apply` does),
sends a request, "waits" by moving its clock on, and sends another: a second
accepted connection means the first was closed as idle. The clock is ours,
so hours of idleness take no time, and no sleep decides an outcome.
"""

import asyncio

import pytest
from multidict import CIMultiDict

from minimesh.config import load_manifests
from minimesh.proxy.message import Journey, Request
from minimesh.proxy.transport.pool import ConnectionSettings, UpstreamPool

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio]

DR = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: p}\nspec:\n  host: catalog\n" \
     "  trafficPolicy:\n    connectionPool: %s\n"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def keep_alive_server(accepted: list):
    async def answer(reader, writer):
        accepted.append(writer.get_extra_info("peername"))
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


def settings(pool_yaml: str) -> ConnectionSettings:
    (dr,) = load_manifests(DR % pool_yaml, "dr.yaml")
    return ConnectionSettings.of(dr.traffic_policy.connection_pool)


@pytest.mark.parametrize("pool_yaml, idle_s, connections", [
    # tcp.idleTimeout: 0s, http.idleTimeout unset: Istio gives Envoy idle_timeout 0s, i.e. none. Ten hours
    # idle, the connection is still the one reused.
    ("{tcp: {idleTimeout: 0s}}", 36000, 1),
    # http.idleTimeout unset: tcp.idleTimeout is the HTTP idle timeout (applyConnectionPool's fallback).
    ("{tcp: {idleTimeout: 1s}}", 2, 2),
    ("{tcp: {idleTimeout: 1s}}", 0.5, 1),
    # http.idleTimeout set: it alone counts, even when longer than tcp.idleTimeout (not the shorter of two).
    ("{http: {idleTimeout: 1h}, tcp: {idleTimeout: 1s}}", 2, 1),
    ("{http: {idleTimeout: 1s}, tcp: {idleTimeout: 0s}}", 2, 2),
    # Neither: the pool's own 15 s.
    ("{tcp: {maxConnections: 10}}", 20, 2),
])
async def test_a_pooled_connection_outlives_idleness_as_istios_idle_timeout_says(pool_yaml, idle_s, connections):
    accepted: list = []
    server, address = await keep_alive_server(accepted)
    clock = Clock()
    pool = UpstreamPool(clock=clock)
    chosen = settings(pool_yaml)
    try:
        # One request opens a connection; its answer parks it in the pool.
        request = Request("GET", "/", "catalog", CIMultiDict(), journey=Journey("outbound"))
        assert (await pool.send(address, request, settings=chosen, destination="catalog")).status == 200
        # Idle for idle_s seconds (of the pool's clock), then the next request.
        clock.now += idle_s
        request = Request("GET", "/", "catalog", CIMultiDict(), journey=Journey("outbound"))
        assert (await pool.send(address, request, settings=chosen, destination="catalog")).status == 200
        assert len(accepted) == connections, (pool_yaml, idle_s, accepted)
        assert pool.counters()["catalog"]["opened"] == connections
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()
