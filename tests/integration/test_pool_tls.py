"""The upstream pool over mutual TLS, in this process: keep-alive, session resumption, secure naming.

A real TLS 1.3 server with a certificate from a real mesh CA answers each
request and closes the connection, so every request makes the pool connect
anew: the second connection must resume the first one's session, and the
SPIFFE ID check must hold on a resumed session too.
"""

import asyncio

import pytest
from multidict import CIMultiDict

from minimesh.errors import UpstreamConnectFailure
from minimesh.pki.ca import CertificateAuthority
from minimesh.pki.spiffe import spiffe_id
from minimesh.pki.workload import build_csr, credentials, new_key
from minimesh.proxy.message import Journey, Request
from minimesh.proxy.transport.pool import UpstreamPool
from minimesh.proxy.transport.tls import TLSContexts

pytestmark = pytest.mark.timeout(30)


def contexts_for(ca: CertificateAuthority, service: str) -> TLSContexts:
    key = new_key()
    issued = ca.sign(build_csr(key, spiffe_id(service)), service)
    return TLSContexts(credentials(key, issued.pem, ca.bundle_pem), ca.bundle_pem)


async def tls_server(contexts: TLSContexts, resumed: list, keep_alive: bool):
    async def answer(reader, writer):
        resumed.append(writer.get_extra_info("ssl_object").session_reused)
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" +
                         (b"" if keep_alive else b"Connection: close\r\n") + b"\r\nok")
            await writer.drain()
            if not keep_alive:
                break
        writer.close()
    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=contexts.server)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


def request() -> Request:
    return Request("GET", "/", "catalog", CIMultiDict(), journey=Journey("outbound"))


async def test_a_new_connection_resumes_the_last_tls_session():
    ca = CertificateAuthority.create()
    resumed = []
    server, address = await tls_server(contexts_for(ca, "catalog"), resumed, keep_alive=False)
    pool = UpstreamPool()
    tls = contexts_for(ca, "web").client_for("catalog")
    try:
        for _ in range(3):
            response = await pool.send(address, request(), tls)
            assert (response.status, response.body) == (200, b"ok")
        assert resumed == [False, True, True]
    finally:
        await pool.close()
        server.close()


async def test_kept_alive_connections_are_reused_and_secure_naming_holds():
    ca = CertificateAuthority.create()
    resumed = []
    server, address = await tls_server(contexts_for(ca, "catalog"), resumed, keep_alive=True)
    pool = UpstreamPool()
    web = contexts_for(ca, "web")
    try:
        for _ in range(5):
            assert (await pool.send(address, request(), web.client_for("catalog"))).status == 200
        assert resumed == [False]  # one connection for all five
        # The server proves catalog's identity; a context expecting payments refuses it.
        with pytest.raises(UpstreamConnectFailure, match="expected spiffe://cluster.local/ns/default/sa/payments"):
            await pool.send(address, request(), web.client_for("payments"))
    finally:
        await pool.close()
        server.close()
