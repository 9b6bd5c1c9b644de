"""AuthorizationPolicy `ports` and `destination.port` name workload ports, as on Istio.

Istio's policies match the port of the workload's container (istio/api PR 3075),
never the Service's: 8080 for every minimesh app (its container port in compose
and on Kubernetes, config/security.py), and 8080 (HTTP) or 8443 (HTTPS) at the
ingress gateway, whose pod listens there behind its Service's 80 and 443. A local
run puts the apps and the gateway on whatever ports are free (here: random ones),
and a policy must not see those.

Real processes: a control plane, a catalog echo beside its sidecar, and the
gateway with its HTTP and HTTPS listeners (a learner's certificate for
shop.example.com).
"""

import pytest
import pytest_asyncio

from tests.support.certs import client_context, learner_certificate, tls_secret
from tests.support.echo import add_echo
from tests.support.manifests import delete_all
from tests.support.mesh import run_mesh

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

HOST = "shop.example.com"


def policy(name: str, selector: dict, action: str, rule: dict, namespace: str = "default") -> dict:
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": selector}, "action": action, "rules": [rule]}}


def to_ports(*ports: str) -> dict:
    return {"to": [{"operation": {"ports": list(ports)}}]}


@pytest_asyncio.fixture(loop_scope="module")
async def mesh(served):
    """The mesh, with no AuthorizationPolicy left behind by a test, passed or failed."""
    yield served
    await delete_all(served, "AuthorizationPolicy")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory):
    ca, cert, key = learner_certificate([HOST])
    async with run_mesh(tmp_path_factory.mktemp("authz-ports") / "home") as mesh:
        catalog = await add_echo(mesh, "catalog", "v1")
        await mesh.add_gateway(default_service=None)
        server = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [HOST]}
        tls = {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": [HOST],
               "tls": {"mode": "SIMPLE", "credentialName": "shop-credential"}}
        await mesh.apply(
            tls_secret("shop-credential", cert, key),
            {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
             "metadata": {"name": "shop", "namespace": "default"},
             "spec": {"selector": {"istio": "ingressgateway"}, "servers": [server, tls]}},
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "shop", "namespace": "default"},
             "spec": {"hosts": [HOST], "gateways": ["shop"], "http": [{"route": [{"destination": {"host": "catalog"}}]}]}})
        mesh.ca = ca
        try:
            yield mesh
        finally:
            await catalog.runner.cleanup()


async def statuses(mesh) -> tuple[int, int]:
    """(status over HTTP at the gateway's port 80, status over HTTPS at its 443) of GET /items."""
    async with mesh.client() as http:
        async with http.get(mesh.gateway.listen + "/items", headers={"Host": HOST}) as r:
            plain = r.status
        async with http.get(f"https://127.0.0.1:{mesh.gateway.tls_port}/items", ssl=client_context(mesh.ca),
                            server_hostname=HOST, headers={"Host": HOST}) as r:
            return plain, r.status


async def test_a_sidecar_policy_names_the_apps_container_port_8080(mesh):
    assert await statuses(mesh) == (200, 200)
    # ALLOW on 8080 only: the app's port as Istio sees it, whatever port the app got here.
    await mesh.apply(policy("catalog-8080", {"app": "catalog"}, "ALLOW", to_ports("8080")))
    assert await statuses(mesh) == (200, 200)
    # A DENY on destination.port 8080 denies everything to catalog.
    await mesh.apply(policy("catalog-no-8080", {"app": "catalog"}, "DENY",
                            {"when": [{"key": "destination.port", "values": ["8080"]}]}))
    assert await statuses(mesh) == (403, 403)


async def test_a_gateway_policy_tells_8080_from_8443(mesh):
    gate = {"istio": "ingressgateway"}
    # DENY on 8443: HTTPS (the Service's 443) is refused, plain HTTP (80 -> 8080) is not.
    await mesh.apply(policy("no-https", gate, "DENY", to_ports("8443"), namespace="istio-system"))
    assert await statuses(mesh) == (200, 403)
    await delete_all(mesh, "AuthorizationPolicy")
    # ALLOW on 8080 only: HTTP passes, HTTPS is denied (no ALLOW rule matches it).
    await mesh.apply(policy("http-only", gate, "ALLOW", to_ports("8080"), namespace="istio-system"))
    assert await statuses(mesh) == (200, 403)
    # The Service's ports are not what a policy sees: ALLOW on 80 and 443 lets nothing in.
    await mesh.apply(policy("http-only", gate, "ALLOW", to_ports("80", "443"), namespace="istio-system"))
    assert await statuses(mesh) == (403, 403)
