"""Egress: what a sidecar does with a request, by the host it names.

Three answers, as in Istio's outbound listener:

    a host in this proxy's registry  the mesh stack: routes, timeouts,
                                     retries, DestinationRules, metrics —
                                     a mesh service, or a host a
                                     ServiceEntry declares (on its port)
    any other host, ALLOW_ANY        straight through (PassthroughCluster),
                                     reported as external
    any other host, REGISTRY_ONLY    502 with flag BH (BlackHoleCluster)

"This proxy's registry" is the mesh's, trimmed by the Sidecar resource that
applies to the workload (config/sidecar_resource.py): the Sidecar in the
workload's namespace whose workloadSelector matches its labels, else that
namespace's Sidecar without a selector, else the root namespace's
(istio-system) — the mesh-wide default. Its outboundTrafficPolicy, when set,
replaces the mesh's default, ALLOW_ANY. Its egress hosts are matched, as on
Istio, against a service's hostname as written: a Kubernetes service's FQDN
(catalog.default.svc.cluster.local, never the short "catalog"), a
ServiceEntry host exactly as the entry lists it. Gateways are not configured by
Sidecar resources (nor on Istio), so they always pass through.

The decision is pure: it takes the snapshot and the request's authority.
"""

from __future__ import annotations

from dataclasses import dataclass

from minimesh.config import DEFAULT_NAMESPACE, ROOT_NAMESPACE, ServiceEntry, Sidecar
from minimesh.config.namespaces import exported_to, fqdn, namespace_of_key, qualify
from minimesh.errors import EgressBlocked

MESH_DEFAULT_POLICY = "ALLOW_ANY"  # Istio's meshConfig.outboundTrafficPolicy default


@dataclass(frozen=True)
class ExternalHost:
    """A host a ServiceEntry declares: the port it answers on and where it sits."""

    host: str
    port: int
    namespace: str
    external: bool  # MESH_EXTERNAL: reported as leaving the mesh
    entry: str  # the ServiceEntry's name, for explanations
    written: str = ""  # the host as the entry writes it (what DNS resolves)


@dataclass(frozen=True)
class Egress:
    """Where a request goes: `service` is the registry host to route to, or None to pass through."""

    service: str | None
    external: bool


def split_authority(authority: str) -> tuple[str, int | None]:
    """'api.example.com:8080' -> ('api.example.com', 8080); no port -> None."""
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host.strip("[]").lower(), int(port)
    return authority.strip("[]").lower(), None


def sidecar_for(resources, labels: dict, namespace: str = DEFAULT_NAMESPACE) -> Sidecar | None:
    """The Sidecar resource configuring a workload, as Istio picks it (oldest first there; by name here)."""
    sidecars = sorted((r for r in resources if isinstance(r, Sidecar)), key=lambda s: s.name)
    own = [s for s in sidecars if s.namespace == namespace]
    for s in own:
        if s.workload_selector is not None and s.workload_selector.selects(labels):
            return s
    for s in own:
        if s.workload_selector is None:
            return s
    return next((s for s in sidecars if s.namespace == ROOT_NAMESPACE and s.workload_selector is None), None)


def decide(config, authority: str, sidecar: Sidecar | None) -> Egress:
    """Mesh stack, pass-through, or refused (EgressBlocked) for a request naming `authority`."""
    host, port = split_authority(authority)
    service = config.service_key(host)  # read as a pod of this proxy's namespace would
    known = _registry_entry(config, service, port)
    if known is not None:
        namespace, external, hostname = known
        if sidecar is None or sidecar.imports(namespace, hostname):
            return Egress(service, external)
        why = f"Sidecar {sidecar.namespace}/{sidecar.name}'s egress hosts leave out {namespace}/{hostname}"
    else:
        why = f"{authority} is not in the mesh's registry (no mesh service, no ServiceEntry for it"
        why += f" on port {port or 80})"
    policy = (sidecar.outbound_traffic_policy if sidecar is not None else None) or MESH_DEFAULT_POLICY
    if policy == "REGISTRY_ONLY":
        raise EgressBlocked(f"{why}, and outboundTrafficPolicy is REGISTRY_ONLY "
                            f"(Sidecar {sidecar.namespace}/{sidecar.name}); add a ServiceEntry for the host")
    return Egress(None, True)


def _registry_entry(config, service: str, port: int | None) -> tuple[str, bool, str] | None:
    """(namespace, external?, hostname) of a known host, or None.

    The hostname is the one a Sidecar's egress hosts are matched against, as Istio
    has it: a Kubernetes service's FQDN, a ServiceEntry host exactly as the entry
    writes it (Istio never qualifies those).
    """
    entry = config.external_hosts.get(service)
    if entry is not None:
        if (port or 80) != entry.port:
            return None  # a ServiceEntry opens its own port only
        return entry.namespace, entry.external, (entry.written or entry.host).lower()
    if config.cluster(service, None) is not None:
        return namespace_of_key(service) or DEFAULT_NAMESPACE, False, fqdn(service)
    return None


def external_hosts(resources, mesh_services, namespace: str = DEFAULT_NAMESPACE) -> dict[str, ExternalHost]:
    """Each host of a ServiceEntry exported to `namespace` (the first entry by name wins; a mesh
    service's name is never shadowed)."""
    hosts: dict[str, ExternalHost] = {}
    entries = (r for r in resources if isinstance(r, ServiceEntry) and exported_to(r, namespace))
    for entry in sorted(entries, key=lambda r: r.name):
        for written in entry.hosts:
            host = qualify(written, entry.namespace)  # a short host is read in the entry's namespace
            if host in mesh_services or host in hosts:
                continue
            hosts[host] = ExternalHost(host, entry.ports[0].number, entry.namespace, entry.external, entry.name,
                                       written)
    return hosts


def entry_endpoints(resources, host: ExternalHost) -> list[tuple[str, str, tuple]]:
    """(instance name, address, labels) of each endpoint of a ServiceEntry host."""
    entry = next(r for r in resources if isinstance(r, ServiceEntry) and r.name == host.entry
                 and r.namespace == host.namespace)
    return [(f"{entry.name}/{address}", address, tuple(sorted(labels.items())))
            for address, labels in entry.endpoint_addresses(host.written or host.host, entry.ports[0])]
