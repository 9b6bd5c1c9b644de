"""Fault injection and mirroring through a real gateway and real sidecars.

pricing v1 serves; pricing v2 only ever sees shadow copies. A VirtualService
aborts or mirrors, and we look at what the caller got and what v2's inbound
sidecar logged.
"""

import asyncio

import pytest
import pytest_asyncio

from tests.support.control import wait_for
from tests.support.mesh import client_session, destination_rule, run_mesh

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]

SUBSETS = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]


def pricing_vs(**route) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "pricing"},
            "spec": {"hosts": ["pricing"],
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
            async with http.get(mesh.gateway.listen + "/prices?ids=p1", headers={"Host": "pricing"}) as r:
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
            async with http.get(mesh.gateway.listen + "/prices?ids=p1", headers={"Host": "pricing"}) as r:
                assert r.status == 200 and (await r.json())["version"] == "v1"

    def shadows():
        lines = [line for line in v2.sidecar.access_log() if line["reporter"] == "inbound"][before:]
        return lines if len(lines) >= 10 else None
    lines = await wait_for(lambda: asyncio.sleep(0, shadows()), 10, what="10 shadow copies at pricing v2")
    assert all(line["authority"].startswith("pricing-shadow") for line in lines)
