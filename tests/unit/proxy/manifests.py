"""Small builders of Istio manifests (as dicts) and parsed resources for the proxy unit tests."""

from minimesh.config import parse_resource


def vs_doc(host: str, *http: dict, name: str | None = None) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name or host}, "spec": {"hosts": [host], "http": list(http)}}


def dr_doc(host: str, subsets=(), lb: str | None = None, name: str | None = None,
           traffic_policy: dict | None = None) -> dict:
    spec: dict = {"host": host}
    if subsets:
        spec["subsets"] = list(subsets)
    if lb:
        spec["trafficPolicy"] = {"loadBalancer": {"simple": lb}}
    if traffic_policy:
        spec["trafficPolicy"] = {**spec.get("trafficPolicy", {}), **traffic_policy}
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name or host}, "spec": spec}


def route(name: str, *match: dict, host: str = "svc", **extra) -> dict:
    r = {"name": name, "route": [{"destination": {"host": host}}], **extra}
    if match:
        r["match"] = list(match)
    return r


def vs(host: str, *http: dict):
    return parse_resource(vs_doc(host, *http))
