"""Fault injection and mirroring through a real gateway and real sidecars.

pricing v1 serves; pricing v2 only ever sees shadow copies. A VirtualService
aborts or mirrors, and we look at what the caller got and what v2's inbound
sidecar logged.
"""

import asyncio

import pytest
import pytest_asyncio

from tests.support.control import wait_for
from tests.support.manifests import TEST_GATEWAYS, destination_rule
from tests.support.mesh import client_session, run_mesh

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]

SUBSETS = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]


def pricing_vs(**route) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "pricing"},
            "spec": {"hosts": ["pricing"], "gateways": TEST_GATEWAYS,
                     "http": [{"route": [{"destination": {"host": "pricing", "subset": "v1"}}], **route}]}}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    async with run_mesh(tmp_path_factory.mktemp("fault") / "home") as mesh:
        await mesh.add("pricing", "v1")
        await mesh.add("pricing", "v2")
        await mesh.add_gateway(default_service="pricing")
        await mesh.converged()
        yield mesh


async def get_prices(mesh, n):
    async with client_session() as http:
        async def one():
            async with http.get(mesh.gateway.listen + "/prices?ids=p1", headers={"Host": "pricing.default.svc.cluster.local"}) as r:
                return r.status, r.headers.get("x-minimesh-error", ""), await r.text()
        return [await one() for _ in range(n)]


async def test_abort_answers_with_the_fault_status_and_flag(mesh):
    await mesh.apply(destination_rule("pricing", subsets=SUBSETS),
                     pricing_vs(fault={"abort": {"httpStatus": 418, "percentage": {"value": 100}}}))
    answers = await get_prices(mesh, 5)
    assert all(status == 418 and error.startswith("FI (fault") for status, error, _ in answers), answers


async def test_delay_is_added_before_the_upstream(mesh):
    await mesh.apply(destination_rule("pricing", subsets=SUBSETS),
                     pricing_vs(fault={"delay": {"fixedDelay": "300ms", "percentage": {"value": 100}}}))
    loop = asyncio.get_running_loop()
    start = loop.time()
    answers = await get_prices(mesh, 3)
    assert all(status == 200 for status, _, _ in answers)
    assert loop.time() - start >= 0.9  # three requests, each held 300 ms by the gateway
    lines = [line for line in mesh.gateway.access_log() if line["destination"] == "pricing"][-3:]
    assert all("DI" in line["flags"] for line in lines), lines


async def test_mirror_copies_reach_v2_while_callers_only_see_v1(mesh):
    await mesh.apply(destination_rule("pricing", subsets=SUBSETS),
                     pricing_vs(mirror={"host": "pricing", "subset": "v2"}))
    v2 = next(i for i in mesh.instances if i.service == "pricing" and i.version == "v2")
    before = len([line for line in v2.sidecar.access_log() if line["reporter"] == "inbound"])
    async with client_session() as http:
        for _ in range(10):
            async with http.get(mesh.gateway.listen + "/prices?ids=p1", headers={"Host": "pricing.default.svc.cluster.local"}) as r:
                assert r.status == 200 and (await r.json())["version"] == "v1"

    def shadows():
        lines = [line for line in v2.sidecar.access_log() if line["reporter"] == "inbound"][before:]
        return lines if len(lines) >= 10 else None
    lines = await wait_for(lambda: asyncio.sleep(0, shadows()), 10, what="10 shadow copies at pricing v2")
    assert all(line["authority"].startswith("pricing") and "-shadow" in line["authority"] for line in lines)


async def test_a_fault_without_percentage_touches_no_request(mesh):
    # Istio (issues 36303, 39969): a fault with no `percentage` injects nothing. The abort is
    # accepted and every answer still comes from pricing.
    await mesh.apply(destination_rule("pricing", subsets=SUBSETS),
                     pricing_vs(fault={"abort": {"httpStatus": 418}}))
    answers = await get_prices(mesh, 20)
    assert all(status == 200 and not error for status, error, _ in answers), answers


async def test_mirrors_under_strict_mtls_deliver_every_copy_and_never_delay_the_caller(tmp_path):
    from tests.integration.test_mtls import peer_auth
    from tests.support.mtls import run_secure_mesh

    async with run_secure_mesh(tmp_path / "home") as mesh:
        await mesh.add("pricing", "v1")
        v2 = await mesh.add("pricing", "v2", env={"DELAY_MS": "400"})  # the mirror is slow
        await mesh.add_gateway(default_service="pricing")
        await mesh.apply(peer_auth("STRICT"), destination_rule("pricing", subsets=SUBSETS),
                         pricing_vs(mirrors=[{"destination": {"host": "pricing", "subset": "v2"},
                                              "percentage": {"value": 100}}]))
        # 100 lookups through the gateway; each is mirrored, over mTLS, to the slow v2.
        loop = asyncio.get_running_loop()
        async with client_session() as http:
            started = loop.time()
            for _ in range(100):
                async with http.get(mesh.gateway.listen + "/prices?ids=p1", headers={"Host": "pricing.default.svc.cluster.local"}) as r:
                    assert r.status == 200 and (await r.json())["version"] == "v1"
            took = loop.time() - started
        # The caller never waited for the 400 ms mirror: 100 lookups took far less than 100 x 0.4 s.
        assert took < 15, f"100 mirrored lookups took {took:.1f}s"

        def copies():
            lines = [line for line in v2.sidecar.access_log() if line["reporter"] == "inbound"]
            return lines if len(lines) >= 95 else None
        lines = await wait_for(lambda: asyncio.sleep(0, copies()), 15, what="≥ 95 shadow copies at pricing v2")
        assert all(line["authority"].startswith("pricing") and "-shadow" in line["authority"] for line in lines)
        assert all(line["status"] == 200 and line["mtls"] for line in lines), lines[:3]
        # And nothing went wrong on the way: no error logged by the gateway.
        assert "Traceback" not in mesh.gateway.logs() and " ERROR " not in mesh.gateway.logs()
