"""The ingress gateway serves what Gateway resources open and bound VirtualServices route — nothing else.

Real processes: a control plane, catalog and web beside sidecars, and the
gateway with no config at first. Each test applies Gateways and
VirtualServices as a learner would and looks at what curl would see:
404 NR for a Host nothing serves (with the reason in x-minimesh-error), the
most specific host winning, `NAMESPACE/host` limiting who may bind, and a
VirtualService without `gateways:` never applying at the gateway.
"""

import pytest
import pytest_asyncio

from tests.support.manifests import delete_all
from tests.support.mesh import run_mesh

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]

ABORT = {"fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}}}


def gateway(hosts, name="shop-gateway", namespace="default") -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"istio": "ingressgateway"},
                     "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts}]}}


def bound_vs(name, hosts, host, gateways=("shop-gateway",), namespace="default", **route) -> dict:
    spec = {"hosts": list(hosts), "http": [{"route": [{"destination": {"host": host}}], **route}]}
    if gateways is not None:
        spec["gateways"] = list(gateways)
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    async with run_mesh(tmp_path_factory.mktemp("ingress") / "home") as mesh:
        await mesh.add("catalog")
        await mesh.add("web")
        await mesh.add_gateway(default_service=None)  # no Gateway, no VirtualService
        await mesh.converged()
        yield mesh


@pytest_asyncio.fixture(loop_scope="module")
async def clean(mesh):
    yield mesh
    await delete_all(mesh, "VirtualService", "Gateway")


async def get(mesh, host: str, path: str = "/items") -> tuple[int, str, str]:
    """(status, serving service or '', x-minimesh-error) of GET path with this Host at the gateway."""
    async with mesh.client() as http, http.get(mesh.gateway.listen + path, headers={"Host": host}) as r:
        body = await r.json(content_type=None) if r.status == 200 else {}
        return r.status, body.get("service", ""), r.headers.get("x-minimesh-error", "")


async def test_without_a_gateway_every_host_is_404_nr(clean):
    status, _, error = await get(clean, "catalog")
    assert status == 404 and error.startswith("NR (route, gateway)"), error
    assert "no Gateway selects this ingress gateway" in error
    # A VirtualService alone (no `gateways:`: the mesh's) opens nothing at the gateway.
    await clean.apply(bound_vs("catalog", ["catalog"], "catalog", gateways=None))
    assert (await get(clean, "catalog.default.svc.cluster.local"))[0] == 404


async def test_a_bound_virtual_service_serves_its_hosts_and_nothing_else(clean):
    await clean.apply(gateway(["*.example.com"]), bound_vs("shop", ["shop.example.com"], "catalog"))
    assert (await get(clean, "shop.example.com")) == (200, "catalog", "")
    # The Gateway opens *.example.com, but no VirtualService serves this name: 404 NR, and why.
    status, _, error = await get(clean, "other.example.com")
    assert status == 404 and "no VirtualService bound to Gateway default/shop-gateway serves Host" in error
    # A Host the Gateway does not open at all.
    status, _, error = await get(clean, "shop.example.org")
    assert status == 404 and "no server of a Gateway" in error


async def test_a_short_host_means_the_fqdn_at_the_gateway_too(clean):
    # hosts: [catalog] is catalog.default.svc.cluster.local; `Host: catalog` is not that name (as on Istio).
    await clean.apply(gateway(["*"]), bound_vs("catalog", ["catalog"], "catalog"))
    assert (await get(clean, "catalog.default.svc.cluster.local"))[:2] == (200, "catalog")
    assert (await get(clean, "catalog"))[0] == 404


async def test_the_most_specific_host_wins_and_only_bound_routes_apply(clean):
    await clean.apply(gateway(["*"]),
                      bound_vs("everything", ["*"], "web"),
                      bound_vs("catalog", ["catalog"], "catalog", gateways=("mesh", "shop-gateway")),
                      # The mesh's own VirtualService for catalog aborts; it must not apply here.
                      bound_vs("catalog-mesh-only", ["catalog"], "catalog", gateways=None, **ABORT))
    assert (await get(clean, "catalog.default.svc.cluster.local"))[:2] == (200, "catalog")
    assert (await get(clean, "anything.at.all", "/healthz"))[:2] == (200, "web")


async def test_a_namespace_prefix_limits_who_may_bind(clean):
    # The server takes VirtualServices from namespace foo only; default's is ignored.
    await clean.apply(gateway(["foo/*"]), bound_vs("shop", ["*"], "catalog", gateways=("default/shop-gateway",)))
    assert (await get(clean, "shop.example.com"))[0] == 404
    await clean.apply(bound_vs("shop", ["*"], "catalog.default.svc.cluster.local",
                               gateways=("default/shop-gateway",), namespace="foo"))
    assert (await get(clean, "shop.example.com")) == (200, "catalog", "")
