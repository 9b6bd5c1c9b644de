"""Circuit breaking through a real gateway and a real slow app: each connectionPool limit,
the retry limits, and what the learner sees (503 UO naming the limit, /metrics, /stats).

One mesh for the module: catalog (one instance, its delay set per test) behind the gateway.
The gateway is the caller whose breaker trips, as web's sidecar would be in the shop.
"""

import asyncio
import re
import shutil
import subprocess

import aiohttp
import pytest
import pytest_asyncio

from tests.support.control import wait_for
from tests.support.manifests import delete_routing, destination_rule, virtual_service
from tests.support.mesh import client_session, run_mesh
from tests.support.mesh import set_fault as set_instance_fault

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    async with run_mesh(tmp_path_factory.mktemp("breaker") / "home") as mesh:
        await mesh.add("catalog")
        await mesh.add_gateway(default_service="catalog")
        await mesh.converged()
        yield mesh


@pytest_asyncio.fixture(loop_scope="module")
async def clean(mesh):
    yield mesh
    await delete_routing(mesh)
    await set_fault(mesh, delay_ms=0, failure_rate=0)
    await mesh.converged()


async def set_fault(mesh, **knobs):
    await set_instance_fault(next(i for i in mesh.instances if i.service == "catalog"), **knobs)


async def burst(mesh, n):
    """n requests at once through the gateway; [(status, x-minimesh-error, seconds)]."""
    loop = asyncio.get_running_loop()
    async with client_session(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def one():
            started = loop.time()
            async with http.get(mesh.gateway.listen + "/items", headers={"Host": "catalog.default.svc.cluster.local"}) as r:
                await r.read()
                return r.status, r.headers.get("x-minimesh-error", ""), loop.time() - started
        return await asyncio.gather(*(one() for _ in range(n)))


async def catalog_lines(mesh, before: int, n: int) -> list[dict]:
    """The gateway's access-log lines for catalog after the first `before`, once there are n."""
    def ready():
        lines = [line for line in mesh.gateway.access_log()[before:] if line["destination"] == "catalog"]
        return lines if len(lines) >= n else None
    return await wait_for(lambda: asyncio.sleep(0, ready()), 10, what=f"{n} access-log lines")


async def gateway_stats(mesh) -> dict:
    return await mesh.gateway.stats()


async def test_max_connections_and_pending_fail_the_overflow_fast_with_uo(clean):
    mesh = clean
    await set_fault(mesh, delay_ms=400)
    # Without limits, ten slow requests all wait their 400 ms and succeed.
    assert {s for s, _, _ in await burst(mesh, 10)} == {200}

    # One connection, one waiting: of ten at once, two are served and eight are refused at once.
    await mesh.apply(destination_rule("catalog", connectionPool={"tcp": {"maxConnections": 1},
                                                  "http": {"http1MaxPendingRequests": 1}}))
    results = await burst(mesh, 10)
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(ok) == 2 and len(refused) == 8, results
    assert all(e.startswith("UO (breaker, gateway)") and "http1MaxPendingRequests 1" in e for _, e, _ in refused)
    assert max(t for _, _, t in refused) < 0.3  # fast: no waiting on the slow upstream
    # The second of the served ones waited for the first: about 800 ms in all.
    assert max(t for _, _, t in ok) >= 0.75
    stats = await gateway_stats(mesh)
    assert {"service": "catalog", "subset": None, "limit": "http1MaxPendingRequests", "count": 8} in \
        stats["breakers"]["overflows"]


async def test_http2_max_requests_bounds_requests_outstanding(clean):
    mesh = clean
    await set_fault(mesh, delay_ms=300)
    await mesh.apply(destination_rule("catalog", connectionPool={"http": {"http2MaxRequests": 3}}))
    results = await burst(mesh, 10)
    assert sum(1 for s, _, _ in results if s == 200) == 3, results
    assert all("http2MaxRequests 3" in e for s, e, _ in results if s == 503)


async def test_max_retries_stops_retries_that_would_multiply_an_outage(clean):
    mesh = clean
    # catalog fails every request, slowly; each request may retry 5 times on 5xx.
    await set_fault(mesh, failure_rate=1.0, delay_ms=100)
    await mesh.apply(virtual_service("catalog", retries={"attempts": 5, "retryOn": "5xx"}),
                     destination_rule("catalog", connectionPool={"http": {"maxRetries": 1}}))
    before = len(mesh.gateway.access_log())
    await burst(mesh, 10)
    lines = await catalog_lines(mesh, before, 10)
    attempts = sum(line["attempts"] for line in lines)
    # Unlimited, that would be 60 attempts. With one retry outstanding at a time, most requests
    # get none: they answer at once with their first failure, flagged UO.
    assert attempts <= 30, attempts
    assert sum(1 for line in lines if "UO" in line["flags"].split(",")) >= 5, [line["flags"] for line in lines]


async def test_retry_budget_caps_retries_as_a_share_of_requests(clean):
    mesh = clean
    await set_fault(mesh, failure_rate=1.0, delay_ms=100)
    await mesh.apply(virtual_service("catalog", retries={"attempts": 5, "retryOn": "5xx"}),
                     destination_rule("catalog", retryBudget={"percent": 10, "minRetryConcurrency": 2}))
    before = len(mesh.gateway.access_log())
    await burst(mesh, 10)
    lines = await catalog_lines(mesh, before, 10)
    attempts = sum(line["attempts"] for line in lines)
    assert attempts <= 35, attempts  # at most 2 retries in flight at once (10 % of 10 is 1; min 2)
    assert any("UO" in line["flags"].split(",") for line in lines)
    stats = await gateway_stats(mesh)
    assert any(o["limit"] == "retryBudget" for o in stats["breakers"]["overflows"])


async def test_max_requests_per_connection_and_idle_timeout_recycle_connections(clean):
    mesh = clean
    await mesh.apply(destination_rule("catalog", connectionPool={"http": {"maxRequestsPerConnection": 1}}))
    for _ in range(5):
        assert [s for s, _, _ in await burst(mesh, 1)] == [200]
    pools = (await gateway_stats(mesh))["pools"]
    assert pools["catalog"]["opened"] >= 5  # a new connection for every request

    await mesh.apply(destination_rule("catalog", connectionPool={"http": {"maxRequestsPerConnection": 100, "idleTimeout": "200ms"}}))
    for _ in range(5):
        assert [s for s, _, _ in await burst(mesh, 1)] == [200]
    opened = (await gateway_stats(mesh))["pools"]["catalog"]["opened"]
    assert opened - pools["catalog"]["opened"] == 1  # kept alive and reused
    # Idle past 200 ms, the pooled connection is closed: the next request opens a new one.
    async def reopened():
        await burst(mesh, 1)
        return (await gateway_stats(mesh))["pools"]["catalog"]["opened"] > opened
    await asyncio.sleep(0.5)  # the behaviour under test is an idle period
    assert await reopened()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
async def test_overflows_are_on_metrics_and_pass_promtool(clean):
    mesh = clean
    await set_fault(mesh, delay_ms=300)
    await mesh.apply(destination_rule("catalog", connectionPool={"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}))
    await burst(mesh, 6)
    async with client_session() as http, http.get(mesh.gateway.admin + "/metrics") as r:
        text = await r.text()
    assert re.search(r'minimesh_upstream_overflow_total\{destination_service="catalog",destination_subset="",'
                     r'limit="http1MaxPendingRequests"\} [1-9]', text), text
    result = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
