"""A sidecar's view of the mesh: the control plane's snapshot, parsed and checked.

The control plane sends plain JSON; here it becomes frozen objects the layers
can read without further checks. A snapshot whose outline is wrong raises
`ConfigError`, and the sidecar NACKs it and keeps serving with its last good
one — Envoy's xDS contract. One unusable *entry* (a resource or an endpoint)
does not cost the rest: it is quarantined alone — left out and named in
`quarantined`, which the sidecar NACKs with — and everything else applies, so
no single registration or manifest can keep a restarted sidecar from
becoming ready (the control plane validates both; this is the second wall).

A proxy sees the mesh from its namespace (config/namespaces.py): only the
VirtualServices and DestinationRules exported to it, and where two name one
host, the one in its own namespace first (then the service's, then the root
namespace's; within one namespace, by name) — Istio's lookup order for
DestinationRules, used here for both kinds.

Clusters are worked out once per snapshot, not per request: for each service,
its endpoints, and for each DestinationRule subset, the endpoints whose labels
match the subset's labels, together with the load-balancing policy in force.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minimesh.config import DEFAULT_NAMESPACE, DestinationRule, TrafficPolicy, VirtualService, parse_resource
from minimesh.config.namespaces import exported_to, namespace_of_key, resolve
from minimesh.config.resource import ROOT_NAMESPACE
from minimesh.errors import ConfigError
from minimesh.proxy.inbound.peer_auth import DEFAULT_MODE, effective_mode

DEFAULT_LOAD_BALANCER = "LEAST_REQUEST"


@dataclass(frozen=True)
class Endpoint:
    instance: str
    address: str  # "host:port" of the instance's inbound listener
    labels: tuple[tuple[str, str], ...] = ()
    identity: str | None = None  # its SPIFFE ID when it holds a certificate (auto mTLS)
    mtls_mode: str = DEFAULT_MODE  # the PeerAuthentication mode in force at its inbound
    namespace: str = DEFAULT_NAMESPACE

    def has_labels(self, wanted) -> bool:
        mine = dict(self.labels)
        return all(mine.get(k) == v for k, v in wanted)


@dataclass(frozen=True)
class Cluster:
    """Where one (service, subset) pair of a route can send requests."""

    service: str
    subset: str | None
    endpoints: tuple[Endpoint, ...]
    load_balancer: str = DEFAULT_LOAD_BALANCER  # simple's name, or "RING_HASH" with consistentHash
    policy: TrafficPolicy | None = None  # the DestinationRule's trafficPolicy in force here (merged)

    @property
    def name(self) -> str:
        return f"{self.service}|{self.subset}" if self.subset else self.service


@dataclass(frozen=True)
class MeshConfig:
    version: str = ""
    config_version: int = 0
    virtual_services: dict[str, VirtualService] = field(default_factory=dict)
    destination_rules: dict[str, DestinationRule] = field(default_factory=dict)
    clusters: dict[tuple[str, str | None], Cluster] = field(default_factory=dict)
    resources: tuple = ()  # every parsed resource, for policies other layers read
    trust_bundle: str = ""  # PEM root certificates that peers' chains must lead to
    endpoints_by_address: dict[str, Endpoint] = field(default_factory=dict)
    quarantined: tuple[str, ...] = ()  # entries left out, each "what: why" (the sidecar NACKs naming them)
    namespace: str = DEFAULT_NAMESPACE  # the proxy's own: short Host names are read in it
    external_hosts: dict = field(default_factory=dict)  # host key -> egress.ExternalHost, from ServiceEntries

    def service_key(self, host: str) -> str:
        """The service a Host names, read from this proxy's namespace (or the host itself if external)."""
        return resolve(host, self.namespace, self.clusters)

    def is_service(self, host: str) -> bool:
        return (self.service_key(host), None) in self.clusters

    def cluster(self, service: str, subset: str | None) -> Cluster | None:
        return self.clusters.get((service, subset))

    def endpoint_at(self, address: str) -> Endpoint | None:
        return self.endpoints_by_address.get(address)


def parse_snapshot(doc: dict, namespace: str = DEFAULT_NAMESPACE) -> MeshConfig:
    """Turn a /v1/watch answer into a MeshConfig for a proxy in `namespace`, or raise ConfigError."""
    _check_shape(doc)
    quarantined: list[str] = []
    resources = tuple(r for r in (_quarantining(quarantined, _entry_name(m), parse_resource, m, source="<snapshot>")
                                  for m in doc.get("resources", [])) if r is not None)
    virtual_services: dict[str, VirtualService] = {}
    destination_rules: dict[str, DestinationRule] = {}
    for r in sorted((r for r in resources if exported_to(r, namespace)), key=lambda r: r.name):
        if isinstance(r, VirtualService) and r.for_mesh:  # gateway-only ones: the gateway's (ingress.py)
            for host in r.hosts:
                # Istio merges VirtualServices for one host only on gateways;
                # for sidecars one wins (here: by namespace order, then name).
                _prefer(virtual_services, host, r, namespace)
        elif isinstance(r, DestinationRule):
            _prefer(destination_rules, r.host, r, namespace)

    clusters = {}
    for service, info in doc.get("services", {}).items():
        endpoints = tuple(e for e in (_quarantining(quarantined, f"endpoint of {service}", _endpoint, raw, resources)
                                      for raw in info.get("endpoints", [])) if e is not None)
        rule = destination_rules.get(service)
        clusters[(service, None)] = _cluster(service, None, endpoints, rule)
        for subset in rule.subsets if rule else ():
            wanted = tuple(dict(subset.labels).items())
            members = tuple(e for e in endpoints if e.has_labels(wanted))
            clusters[(service, subset.name)] = _cluster(service, subset.name, members, rule)
    # A DestinationRule may name a service that has no instance yet: its
    # subsets exist, empty, so a route to them answers 503 UH, not 404 NR.
    for service, rule in destination_rules.items():
        clusters.setdefault((service, None), _cluster(service, None, (), rule))
        for subset in rule.subsets:
            clusters.setdefault((service, subset.name), _cluster(service, subset.name, (), rule))

    endpoints_by_address = {e.address: e for (_, subset), c in clusters.items() if subset is None
                            for e in c.endpoints}
    external = _service_entry_clusters(resources, clusters, destination_rules, set(doc.get("services", {})),
                                       namespace)
    return MeshConfig(
        version=str(doc["version"]),
        config_version=int(doc.get("config_version", 0)),
        virtual_services=virtual_services,
        destination_rules=destination_rules,
        clusters=clusters,
        resources=resources,
        trust_bundle="".join(doc.get("trust_bundle", [])),
        endpoints_by_address=endpoints_by_address,
        quarantined=tuple(quarantined),
        namespace=namespace,
        external_hosts=external,
    )


def _prefer(chosen: dict, host: str, resource, namespace: str) -> None:
    """Keep, for `host`, the resource nearest the proxy: its namespace, the host's, the root's, any other."""
    def rank(r):
        order = (namespace, namespace_of_key(host), ROOT_NAMESPACE)
        return order.index(r.namespace) if r.namespace in order else len(order)
    if host not in chosen or rank(resource) < rank(chosen[host]):
        chosen[host] = resource


def _service_entry_clusters(resources, clusters: dict, destination_rules: dict, mesh_services: set,
                            namespace: str) -> dict:
    """Clusters for the hosts ServiceEntries declare (egress.py), added to `clusters`; returns the hosts.

    Their endpoints are no mesh workloads: they stay out of endpoints_by_address, so auto mTLS leaves them
    plaintext unless a DestinationRule's tls says otherwise (origination.py).
    """
    from minimesh.proxy.outbound.egress import entry_endpoints, external_hosts

    hosts = external_hosts(resources, mesh_services, namespace)
    for host in hosts.values():
        endpoints = tuple(Endpoint(instance=name, address=address, labels=labels, mtls_mode="DISABLE")
                          for name, address, labels in entry_endpoints(resources, host))
        rule = destination_rules.get(host.host)
        clusters[(host.host, None)] = _cluster(host.host, None, endpoints, rule)
        for subset in rule.subsets if rule else ():
            members = tuple(e for e in endpoints if e.has_labels(tuple(dict(subset.labels).items())))
            clusters[(host.host, subset.name)] = _cluster(host.host, subset.name, members, rule)
    return hosts


def _entry_name(manifest) -> str:
    if isinstance(manifest, dict) and isinstance(manifest.get("metadata"), dict):
        return f"{manifest.get('kind', '?')} {manifest['metadata'].get('name', '?')}"
    return "a resource"


def _quarantining(quarantined: list[str], name: str, parse, *args, **kwargs):
    """parse(*args) — or None, with the entry and its reason noted, if it is unusable."""
    try:
        return parse(*args, **kwargs)
    except ConfigError as e:
        quarantined.append(f"{name}: {str(e).splitlines()[0]}")
        return None


def _check_shape(doc) -> None:
    """Refuse a snapshot whose outline is wrong before reading any of it."""
    def fail(message, field=""):
        raise ConfigError(message, source="<snapshot>", field=field)

    if not isinstance(doc, dict) or "version" not in doc:
        fail("snapshot is not an object with a version")
    if isinstance(doc.get("config_version", 0), bool) or not isinstance(doc.get("config_version", 0), int):
        fail("must be an integer", "config_version")
    if not isinstance(doc.get("resources", []), list):
        fail("must be a list of manifests", "resources")
    services = doc.get("services", {})
    if not isinstance(services, dict):
        fail("must be a map of service name to endpoints", "services")
    bundle = doc.get("trust_bundle", [])
    if not isinstance(bundle, list) or not all(isinstance(b, str) and "BEGIN CERTIFICATE" in b for b in bundle):
        fail("must be a list of PEM certificates", "trust_bundle")
    for name, info in services.items():
        if not isinstance(info, dict) or not isinstance(info.get("endpoints", []), list):
            fail("must be an object with an endpoints list", f"services.{name}")


def _endpoint(e: dict, resources) -> Endpoint:
    try:
        host, _, port = e["address"].rpartition(":")
        if not host or not 0 < int(port) < 65536:
            raise ValueError(port)
        if not isinstance(e.get("identity"), (str, type(None))):
            raise TypeError("identity")
        labels = tuple(sorted((str(k), str(v)) for k, v in e.get("labels", {}).items()))
        identity = e.get("identity")
        namespace = str(e.get("namespace") or DEFAULT_NAMESPACE)
        return Endpoint(instance=str(e["instance"]), address=e["address"], labels=labels,
                        identity=str(identity) if identity else None,
                        mtls_mode=effective_mode(resources, dict(labels), namespace), namespace=namespace)
    except (KeyError, ValueError, AttributeError, TypeError) as err:
        raise ConfigError(f"bad endpoint {e!r}: needs instance and address host:port",
                          source="<snapshot>", field="services.endpoints") from err


def _cluster(service: str, subset: str | None, endpoints, rule: DestinationRule | None) -> Cluster:
    policy = rule.policy_for(subset) if rule is not None else None
    lb = policy.load_balancer if policy is not None else None
    name = ("RING_HASH" if lb.consistent_hash is not None else lb.simple or DEFAULT_LOAD_BALANCER) if lb else None
    return Cluster(service, subset, endpoints, name or DEFAULT_LOAD_BALANCER, policy)
