"""The Istio config the tests apply and take away: the lessons' ingress, one-route VirtualServices, DestinationRules."""

from __future__ import annotations

from pathlib import Path

DEMO_SERVICES = tuple(sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "demo-services").glob("*.py")
                             if not p.stem.startswith("_"))) + ("echo", "broken", "ghost", "gone")
# What the tests' VirtualServices bind to: the sidecars, and add_gateway's Gateway (for Hosts
# written as FQDNs, `catalog.default.svc.cluster.local`, as on Istio).
TEST_GATEWAYS = ["mesh", "istio-system/ingress"]


def ingress(default_service: str, services: tuple[str, ...] = DEMO_SERVICES) -> list[dict]:
    """A Gateway on every Host and a VirtualService bound to it, as the lessons ship them: each
    service by name (`Host: catalog`, `catalog:80`, its FQDN), anything else to `default_service`."""
    gateway = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
               "metadata": {"name": "ingress", "namespace": "istio-system"},
               "spec": {"selector": {"istio": "ingressgateway"},
                        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}
    by_name = [{"match": [{"authority": {"regex": rf"{s}(\.default\.svc\.cluster\.local)?(:[0-9]+)?"}}],
                "route": [{"destination": {"host": s}}]} for s in services if s != default_service]
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "ingress", "namespace": "default"},
          "spec": {"hosts": ["*"], "gateways": ["istio-system/ingress"],
                   "http": [*by_name, {"route": [{"destination": {"host": default_service}}]}]}}
    return [gateway, vs]


def virtual_service(host: str, **route) -> dict:
    """A VirtualService with one http route to `host`; `route` adds timeout, retries, match..."""
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": host},
            "spec": {"hosts": [host], "gateways": TEST_GATEWAYS,
                     "http": [{"route": [{"destination": {"host": host}}], **route}]}}


def destination_rule(host: str, lb: str | None = None, subsets: list | None = None, **traffic_policy) -> dict:
    """A DestinationRule for `host`; `lb` is the simple load balancer, `traffic_policy` any other
    trafficPolicy fields (connectionPool=…, outlierDetection=…)."""
    spec: dict = {"host": host}
    if lb:
        traffic_policy = {"loadBalancer": {"simple": lb}, **traffic_policy}
    if traffic_policy:
        spec["trafficPolicy"] = traffic_policy
    if subsets:
        spec["subsets"] = subsets
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": host},
            "spec": spec}


async def _delete_each(mesh, kind: str, keep=lambda resource: False) -> None:
    _, body = await mesh.cp("GET", f"/v1/config?kind={kind}")
    for r in body["resources"]:
        if not keep(r):
            await mesh.cp("DELETE", f"/v1/config/{kind}/{r['metadata']['name']}"
                                    f"?namespace={r['metadata'].get('namespace', 'default')}")


async def delete_routing(mesh) -> None:
    """Delete every VirtualService and DestinationRule (between the tests of one module-wide mesh),
    but not the way in: VirtualServices bound to a Gateway (add_gateway's `ingress`) stay."""
    await _delete_each(mesh, "VirtualService", keep=lambda vs: "mesh" not in vs["spec"].get("gateways", ["mesh"]))
    await _delete_each(mesh, "DestinationRule")


async def delete_all(mesh, *kinds: str) -> None:
    """Delete every resource of these kinds, in every namespace, and wait until every proxy has it so."""
    for kind in kinds:
        await _delete_each(mesh, kind)
    await mesh.converged()
