"""The gateway as a user meets it: curl the shop through it, route by Host, malformed requests.

Real processes throughout: a control plane, demo services beside real
sidecars, and the gateway (tests/support/mesh.py).
"""

import pytest
import pytest_asyncio

from tests.support.mesh import run_mesh

# One shop for the whole module (starting nine processes takes seconds); no test changes its config.
pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(tmp_path_factory):
    """web, catalog, pricing (v1) and payments, each with a sidecar, plus the gateway (default: web)."""
    async with run_mesh(tmp_path_factory.mktemp("gateway") / "home") as mesh:
        await mesh.add("web")
        await mesh.add("catalog")
        await mesh.add("pricing")
        await mesh.add("payments")
        await mesh.add_gateway(default_service="web")
        await mesh.converged()
        yield mesh


async def test_products_through_gateway_web_catalog_pricing(shop):
    # A browser's request (any Host) reaches web, which calls catalog and pricing through its sidecar.
    async with shop.client() as http, http.get(shop.gateway.listen + "/api/products") as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert body["service"] == "web" and body["instance"] == "web-v1-0"
    assert [u["instance"] for u in body["upstreams"]] == ["catalog-v1-1", "pricing-v1-2"]
    assert len(body["products"]) == 5 and all(p["price"] is not None for p in body["products"])
    # Each hop wrote its access log: the gateway, web's outbound, catalog's inbound.
    web_out = [line for line in shop.instances[0].sidecar.access_log() if line["reporter"] == "outbound"]
    assert {line["destination"] for line in web_out} == {"catalog", "pricing"}
    assert all(line["status"] == 200 and not line["external"] for line in web_out)


@pytest.mark.parametrize("host,path,service", [
    ("pricing", "/prices?ids=p1", "pricing"),
    ("catalog:80", "/items", "catalog"),
    ("catalog.default.svc.cluster.local", "/items", "catalog"),
    ("shop.example.com", "/api/products", "web"),   # names no service: the default service
    ("127.0.0.1", "/healthz", "web"),
])
async def test_host_header_routing(shop, host, path, service):
    async with shop.client() as http, http.get(shop.gateway.listen + path, headers={"Host": host}) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert body["service"] == service
    assert body["instance"].startswith(f"{service}-v1-")
