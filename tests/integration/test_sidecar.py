"""One sidecar against the outside world: pass-through, malformed and oversize requests, dead upstreams.

Malformed requests are written on raw sockets, as a broken client would send
them; everything else goes through aiohttp the way an app with HTTP_PROXY does.
"""

import asyncio

import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.control import wait_for
from tests.support.mesh import client_session, run_mesh
from tests.support.shop import free_port

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    """catalog with its sidecar, and a gateway whose default service is catalog."""
    async with run_mesh(tmp_path_factory.mktemp("sidecar") / "home", ttl=30) as mesh:
        await mesh.add("catalog")
        await mesh.add_gateway(default_service="catalog")
        await mesh.converged()
        yield mesh


@pytest.fixture
def catalog(mesh):
    return mesh.instances[0].sidecar


def listener(mesh, name):
    sidecar = mesh.instances[0].sidecar
    return {"outbound": sidecar.outbound, "inbound": sidecar.inbound, "gateway": mesh.gateway.listen}[name]


async def raw_exchange(url: str, data: bytes) -> bytes:
    """Write `data` on a fresh connection and read one answer: its head and Content-Length body."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        return head + await asyncio.wait_for(reader.readexactly(length), 10)
    except (ConnectionResetError, asyncio.IncompleteReadError):
        return b""
    finally:
        writer.close()


def status_of(answer: bytes) -> int | None:
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/1.") else None


# --- ALLOW_ANY: a host outside the mesh ---------------------------------------------------------


async def test_absolute_form_request_to_a_non_mesh_host_passes_through_and_is_logged_external(mesh, catalog):
    # An "external" service: an aiohttp server of our own on 127.0.0.1, not registered in the mesh.
    seen = []

    async def hello(request):
        seen.append((request.path_qs, request.headers.get("x-request-id")))
        return web.json_response({"external": True})

    runner = web.AppRunner(web.Application(handler_args=None))
    runner.app.router.add_get("/hello", hello)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        # The app's request, as HTTP_PROXY makes it: GET http://127.0.0.1:<port>/hello?x=1 to the sidecar.
        async with client_session() as http, \
                http.get(f"http://127.0.0.1:{port}/hello?x=1", proxy=catalog.outbound) as r:
            assert r.status == 200
            assert await r.json() == {"external": True}
    finally:
        await runner.cleanup()
    assert seen and seen[0][0] == "/hello?x=1"
    assert seen[0][1]  # the sidecar gave the request an id

    async def logged():
        return [line for line in catalog.access_log() if line["path"] == "/hello?x=1"]
    [line] = await wait_for(logged, 5, what="the access-log line")
    assert line["external"] is True and line["status"] == 200
    assert line["endpoint"] == f"127.0.0.1:{port}" and line["destination"] == f"127.0.0.1:{port}"


# --- bad input: malformed requests and oversize headers -----------------------------------------

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: catalog\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: catalog\r\nBad Header Without Colon\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: catalog\r\nContent-Length: nope\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: catalog\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST / HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


@pytest.mark.parametrize("name", ["outbound", "inbound", "gateway"])
@pytest.mark.parametrize("data", MALFORMED, ids=range(len(MALFORMED)))
async def test_malformed_request_is_400(mesh, name, data):
    answer = await raw_exchange(listener(mesh, name), data)
    assert status_of(answer) == 400, answer[:300]


def one_big_header() -> bytes:
    return b"GET /items HTTP/1.1\r\nHost: catalog\r\nX-Big: " + b"a" * (65 * 1024) + b"\r\n\r\n"


def many_headers() -> bytes:
    # 100 headers of ~1 KiB each: every one under the per-field limit, 100 KiB in all.
    fields = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 1000) for i in range(100))
    return b"GET /items HTTP/1.1\r\nHost: catalog\r\n" + fields + b"\r\n"


@pytest.mark.parametrize("name", ["outbound", "inbound", "gateway"])
@pytest.mark.parametrize("make", [one_big_header, many_headers])
async def test_oversize_headers_are_431(mesh, name, make):
    answer = await raw_exchange(listener(mesh, name), make())
    assert status_of(answer) == 431, answer[:300]


@pytest.mark.parametrize("name", ["outbound", "inbound", "gateway"])
async def test_headers_just_under_the_limit_are_served(mesh, name):
    # 60 headers of 1000 bytes (~59 KiB with their names): under the 60 KiB limit, so the request is served.
    headers = {f"x-h{i}": "c" * 1000 for i in range(60)}
    target = listener(mesh, name)
    async with client_session() as http:
        if name == "outbound":
            r = await http.get("http://catalog/items", headers=headers, proxy=target)
        else:
            r = await http.get(target + "/items", headers={"Host": "catalog", **headers})
        async with r:
            assert r.status == 200, await r.text()


async def test_bad_requests_leave_the_sidecar_healthy_without_leaking_fds(mesh, catalog):
    gateway = mesh.gateway
    targets = [(catalog, catalog.outbound), (catalog, catalog.inbound), (gateway, gateway.listen)]
    before = {p.instance: p.fd_count() for p, _ in targets}
    payloads = MALFORMED + [one_big_header(), many_headers()]
    sem = asyncio.Semaphore(20)

    async def one(i):
        async with sem:
            proxy, url = targets[i % 3]
            return status_of(await raw_exchange(url, payloads[i % len(payloads)]))

    statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert set(statuses) <= {400, 431}, set(statuses)
    # Every bad connection was closed: the fd count comes back to where it was (a small margin
    # for pooled upstream connections and log files).
    for proxy, _ in targets:
        async def settled(proxy=proxy):
            return proxy.fd_count() <= before[proxy.instance] + 5
        await wait_for(settled, 10, what=f"{proxy.instance} fds back near {before[proxy.instance]}")
        assert await proxy.healthy()
    # And they still serve real traffic, all the way through.
    async with client_session() as http, http.get(gateway.listen + "/items", headers={"Host": "catalog"}) as r:
        assert r.status == 200


# --- upstreams that are not there ---------------------------------------------------------------


async def test_dead_app_behind_a_registered_sidecar_is_503_uf_after_retries(mesh):
    # A second catalog instance whose app never started: registered, reachable sidecar, dead app.
    from tests.support.mesh import start_sidecar
    ghost = await start_sidecar(mesh.control_url, "ghost", app_port=free_port(), instance="ghost-v1-0",
                                log_dir=mesh.log_dir)
    try:
        await mesh.converged()
        async with client_session() as http:
            for _ in range(3):
                async with http.get(mesh.gateway.listen + "/items", headers={"Host": "ghost"}) as r:
                    assert r.status == 503
                    error = r.headers["x-minimesh-error"]
                    assert error.startswith("UF (connect, inbound)"), error
        # ghost's inbound tried the app three times: Istio (1.24 and later) gives the inbound route
        # `retry_on: reset-before-request, num_retries: 2` (route.go BuildDefaultHTTPInboundRoute),
        # and a refused connect is a failure before any byte was sent. Then 503 with URX,UF.
        inbound = [line for line in ghost.access_log() if line["reporter"] == "inbound"]
        assert len(inbound) == 3 and all(line["flags"] == "URX,UF" for line in inbound)
        assert all(line["attempts"] == 3 for line in inbound)
        # To the gateway that is an answer, a 503, which Istio's outbound default (connect-failure,
        # refused-stream, unavailable, cancelled) does not retry. One attempt each, no URX.
        lines = [line for line in mesh.gateway.access_log() if line["destination"] == "ghost"]
        assert [line["attempts"] for line in lines] == [1, 1, 1]
        assert not any("URX" in line["flags"] for line in lines)
        # The sidecar keeps serving.
        assert await ghost.healthy()
        stats = await ghost.stats()
        assert sum(r["count"] for r in stats["requests"] if r["status"] == 503) == 3
    finally:
        assert await ghost.stop() == 0


async def test_sigkilled_sidecar_still_registered_is_503_uf_at_the_caller(mesh):
    from tests.support.mesh import start_sidecar
    gone = await start_sidecar(mesh.control_url, "gone", app_port=free_port(), instance="gone-v1-0",
                               log_dir=mesh.log_dir)
    await mesh.converged()
    gone.kill()  # no goodbye: the registry keeps it until its ttl (30 s here) runs out
    async with client_session() as http, \
            http.get(mesh.gateway.listen + "/items", headers={"Host": "gone"}) as r:
        assert r.status == 503
        error = r.headers["x-minimesh-error"]
    assert error.startswith("UF (connect, gateway)"), error
    [line] = [line for line in mesh.gateway.access_log() if line["destination"] == "gone"]
    assert line["attempts"] == 3 and line["flags"] == "URX,UF"
    assert await mesh.gateway.healthy()
