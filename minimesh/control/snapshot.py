"""The snapshot: everything a proxy needs, as one JSON document.

A snapshot is the config in force plus the endpoints of every service, built
fresh from the store and the registry. Its version is an opaque string made
of three parts — config version, an epoch token chosen at each control plane
start, and the registry generation — so it changes whenever either input
changes and never repeats across restarts (a restarted control plane starts
its registry generation at 0 again; the new epoch keeps the string new).
"""

from __future__ import annotations

from minimesh.config.namespaces import service_key
from minimesh.config.resource import ROOT_NAMESPACE
from minimesh.control.registry import Instance


def snapshot_version(config_version: int, epoch: str, registry_generation: int) -> str:
    return f"{config_version}.{epoch}.{registry_generation}"


def config_version_of(version: str) -> int | None:
    """The config version a snapshot version was built from (None if it is not one of ours)."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def endpoints_by_service(instances: list[Instance]) -> dict:
    """Only sidecars with an inbound listener receive mesh traffic; gateways do not."""
    services: dict[str, dict] = {}
    for inst in sorted(instances, key=lambda i: i.name):
        reg = inst.registration
        inbound = reg.addresses.get("inbound")
        if reg.kind != "sidecar" or not inbound:
            continue
        endpoint = {"instance": reg.instance, "address": inbound, "labels": dict(reg.labels)}
        if reg.namespace != "default":
            endpoint["namespace"] = reg.namespace
        if reg.identity:
            # The SPIFFE ID the instance holds a certificate for: callers send it
            # mutual TLS (Istio's "auto mTLS"); an endpoint without one gets plaintext.
            endpoint["identity"] = reg.identity
        # Known by its key: 'catalog' in default, catalog.foo.svc.cluster.local in foo (config/namespaces.py).
        key = service_key(reg.service, reg.namespace)
        services.setdefault(key, {"endpoints": []})["endpoints"].append(endpoint)
    return services


def secrets_for(resources: list[dict], gateway: bool) -> list[dict]:
    """The resources one proxy may hold: a TLS Secret only for the ingress gateway, of its own namespace.

    As Istio's gateway reads the Secret a Gateway's `credentialName` names from
    its own namespace (over SDS), and no sidecar ever holds it: a Secret leaves
    the control plane only for a caller whose certificate proves the ingress
    gateway's identity (api.py decides who that is).
    """
    return [doc for doc in resources if doc.get("kind") != "Secret"
            or (gateway and doc.get("metadata", {}).get("namespace") == ROOT_NAMESPACE)]


def build_snapshot(version: str, config_version: int, resources: list[dict], instances: list[Instance],
                   trust_bundle: list[str] = ()) -> dict:
    return {"version": version, "config_version": config_version, "resources": list(resources),
            "services": endpoints_by_service(instances),
            "trust_bundle": list(trust_bundle)}  # the root certificates peers are verified against
