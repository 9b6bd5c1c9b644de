"""Fuzzing a real sidecar with request bytes: whatever arrives, no 500, no crash, no leaked fd.

Hypothesis writes 10,000 requests — some well-formed, most bent (odd
methods, targets, header names and values, framing, bodies) and some plain
noise — each on its own connection to the gateway, which half-closes after
sending so the sidecar never has to wait for a deadline. One sidecar serves
them all; the answers may be anything but a 500, and at the end the process
is alive, still serving, and holds no more file descriptors than before.
"""

import asyncio
import socket

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings, strategies as st

from minimesh.proxy.transport.pool import IDLE_TIMEOUT
from tests.support.control import wait_for
from tests.support.mesh import client_session, run_mesh

pytestmark = [pytest.mark.timeout(600), pytest.mark.asyncio(loop_scope="module")]

CASES = 10_000

token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~",
                min_size=0, max_size=12)
anything = st.binary(max_size=60)
methods = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"CONNECT", b"PATCH",
                           b"TRACE", b"PRI", b"get", b""]) | token.map(str.encode)
targets = st.sampled_from([b"/items", b"*", b"/", b"http://catalog/items", b"http://127.0.0.1:1/x",
                           b"//", b"/%00", b"/a?b=c#d", b"catalog:80", b"https://catalog/"]) | anything
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 ", b"", b"HTTP/9"])
header_names = st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"Expect", b"Connection",
                                b"Upgrade", b"x-minimesh-hop", b"traceparent", b"X"]) | token.map(str.encode)
header_values = st.sampled_from([b"catalog", b"0", b"5", b"-1", b"chunked", b"chunked, gzip", b"100-continue",
                                 b"close", b"keep-alive", b"Upgrade", b"websocket", b"00-bad"]) | anything
headers = st.lists(st.tuples(header_names, header_values, st.sampled_from([b": ", b":", b" : ", b"\n"])),
                   max_size=8)
bodies = st.sampled_from([b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"0\r\n\r\n"]) | anything


@st.composite
def requests(draw) -> bytes:
    line = draw(methods) + b" " + draw(targets) + b" " + draw(versions) + draw(st.sampled_from([b"\r\n", b"\n"]))
    fields = b"".join(name + sep + value + b"\r\n" for name, value, sep in draw(headers))
    return line + fields + draw(st.sampled_from([b"\r\n", b"", b"\n"])) + draw(bodies)


def one_case(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return b""
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    async with run_mesh(tmp_path_factory.mktemp("fuzz") / "home", ttl=30) as mesh:
        await mesh.add("catalog")
        await mesh.add_gateway(default_service="catalog")
        await mesh.converged()
        yield mesh


async def test_ten_thousand_fuzzed_requests_get_no_500_and_leak_nothing(mesh):
    gateway = mesh.gateway
    port = int(gateway.listen.rsplit(":", 1)[1])
    before = gateway.fd_count()
    seen_statuses = set()

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(requests(), st.binary(max_size=200)))
    def fuzz(data):
        answer = one_case(port, data)
        for line in answer.split(b"\r\n"):
            if line.startswith(b"HTTP/1.1 ") and line[9:12].isdigit():
                seen_statuses.add(int(line[9:12]))
        assert b" 500 " not in answer.split(b"\r\n", 1)[0], (data, answer[:400])
        assert b"Traceback" not in answer, (data, answer[:400])

    await asyncio.to_thread(fuzz)
    assert 400 in seen_statuses and 200 in seen_statuses, seen_statuses  # the fuzz reached both kinds
    assert 500 not in seen_statuses
    # Alive, still serving, and every connection let go.
    assert await gateway.healthy()
    async with client_session() as http, http.get(gateway.listen + "/items", headers={"Host": "catalog"}) as r:
        assert r.status == 200

    async def settled():
        return gateway.fd_count() <= before + 5
    # Kept-alive upstream connections are let go at the pool's idle timeout, so wait past it: a
    # loaded box finished the fuzz with a few still idle and 15 s was not always enough (a leak never returns).
    await wait_for(settled, IDLE_TIMEOUT + 15, what=f"gateway fds back near {before}")
