"""Sidecar: what one workload's proxy knows of the mesh, and where it may send.

Istio's `Sidecar` resource trims a proxy's view:

    workloadSelector       which workloads it configures; without one, every
                           workload of its namespace — and, in the root
                           namespace istio-system, every workload of the mesh
                           whose namespace has no Sidecar of its own
    egress[].hosts         the hosts this proxy knows, as "namespace/host":
                           "./*" (every host of the Sidecar's namespace),
                           "*/*", "default/catalog.default.svc.cluster.local",
                           "*/api.example.com", "*/*.example.com"
    outboundTrafficPolicy  ALLOW_ANY (an unknown host passes straight
                           through: Istio's PassthroughCluster) or
                           REGISTRY_ONLY (refused with 502: BlackHoleCluster)

A host the proxy does not know is "unknown" exactly like a host outside the
mesh: passed through under ALLOW_ANY, refused under REGISTRY_ONLY.

The host part is matched against each service's hostname *as written*
(Istio's pilot/pkg/model/sidecar.go: an exact lookup, or a `*.suffix`
wildcard). A Kubernetes service's hostname is its FQDN, so a short name —
"default/catalog", "./catalog" — imports no Kubernetes service at all, only
a ServiceEntry host literally written "catalog". Istio accepts it silently
(the API says the dnsName "should be specified using FQDN format"); minimesh
does the same and warns at apply, naming the FQDN to write.
Which Sidecar applies to a workload is decided in proxy/outbound/egress.py.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from .fields import At, check_fields, enum, labels, mapping, require, sequence, string
from .resource import Labels, Resource

ROOT_NAMESPACE = "istio-system"
OUTBOUND_POLICIES = ("ALLOW_ANY", "REGISTRY_ONLY")


@dataclass(frozen=True)
class EgressHost:
    """One "namespace/host" entry; '*' and '.' as Istio reads them."""

    namespace: str  # a namespace, "*" (any) or "." (the Sidecar's own)
    host: str  # a host name, "*" or a "*.suffix" wildcard

    def admits(self, namespace: str, host: str, own_namespace: str) -> bool:
        wanted = own_namespace if self.namespace == "." else self.namespace
        if wanted not in ("*", namespace):
            return False
        return self.host == "*" or fnmatch.fnmatchcase(host, self.host)


@dataclass(frozen=True, kw_only=True)
class Sidecar(Resource):
    kind = "Sidecar"
    workload_selector: Labels | None = None
    egress_hosts: tuple[EgressHost, ...] | None = None  # None: every host of the mesh ("*/*")
    outbound_traffic_policy: str | None = None  # None: the mesh's default (ALLOW_ANY)

    def imports(self, namespace: str, host: str) -> bool:
        """Does this Sidecar let its workloads know `host` of `namespace`?"""
        if self.egress_hosts is None:
            return True
        return any(e.admits(namespace, host, self.namespace) for e in self.egress_hosts)


def parse_sidecar(spec: dict, at: At, **meta) -> Sidecar:
    for key, what in (
        ("ingress", "Istio would configure the inbound listeners (ports, default endpoints) of the workload"),
        ("inboundConnectionPool", "Istio would limit the connections into the workload"),
    ):
        if key in spec:
            raise (at / key).error(f"field '{key}' is not supported by minimesh; {what}")
    check_fields(spec, at, ("workloadSelector", "egress", "outboundTrafficPolicy"))
    selector = None
    if "workloadSelector" in spec:
        block = mapping(spec["workloadSelector"], at / "workloadSelector")
        check_fields(block, at / "workloadSelector", ("labels",))
        selector = Labels(labels(block.get("labels"), at / "workloadSelector" / "labels"))
    egress = None
    if "egress" in spec:
        items = sequence(spec["egress"], at / "egress")
        if len(items) != 1:
            raise (at / "egress").error(f"minimesh reads one egress listener (got {len(items)}); Istio would "
                                        "configure one per port — put every host in one 'hosts' list")
        egress = _parse_egress(items[0], at / "egress" / 0, meta["namespace"])
    policy = None
    if "outboundTrafficPolicy" in spec:
        block, p_at = mapping(spec["outboundTrafficPolicy"], at / "outboundTrafficPolicy"), at / "outboundTrafficPolicy"
        if "egressProxy" in block:
            raise (p_at / "egressProxy").error("field 'egressProxy' is not supported by minimesh; Istio would send "
                                               "unknown hosts to that egress proxy instead of passing them through")
        check_fields(block, p_at, ("mode",))
        policy = enum(block.get("mode", "REGISTRY_ONLY"), p_at / "mode", OUTBOUND_POLICIES)
    return Sidecar(workload_selector=selector, egress_hosts=egress, outbound_traffic_policy=policy, **meta)


def _names_no_service(host: str) -> bool:
    """A Kubernetes-style partial name ('catalog', 'catalog.default.svc'): no service's hostname is that."""
    return "*" not in host and ("." not in host or host.endswith(".svc"))


def _short_host_warning(entry: str, namespace: str, host: str, own_namespace: str) -> str:
    name, service_namespace = host, own_namespace if namespace in (".", "*") else namespace
    if host.endswith(".svc") and host.count(".") == 2:  # 'catalog.default.svc'
        name, service_namespace, _ = host.split(".")
    fixed = f"{namespace}/{name.split('.')[0]}.{service_namespace}.svc.cluster.local"
    return (f"{entry!r} is not an FQDN: as on Istio, the host is matched against service hostnames as written, "
            f"so it imports no Kubernetes service (only a ServiceEntry host written {host!r}); write {fixed!r}")


def _parse_egress(value: Any, at: At, own_namespace: str) -> tuple[EgressHost, ...]:
    block = mapping(value, at)
    for key, what in (("port", "Istio would apply this egress listener to that port only"),
                      ("bind", "Istio would bind the listener to that address"),
                      ("captureMode", "Istio would change how traffic is captured (iptables or none)")):
        if key in block:
            raise (at / key).error(f"field '{key}' is not supported by minimesh; {what}")
    check_fields(block, at, ("hosts",))
    hosts = []
    for i, text in enumerate(sequence(require(block, "hosts", at), at / "hosts")):
        entry = string(text, at / "hosts" / i).lower()
        namespace, slash, host = entry.partition("/")
        if not slash or not namespace or not host:
            raise (at / "hosts" / i).error(f"egress host {entry!r} must be 'namespace/host', like './*', "
                                           "'istio-system/*' or '*/api.example.com'")
        if "*" in host and host != "*" and not (host.startswith("*.") and "*" not in host[2:]):
            raise (at / "hosts" / i).error(f"host {host!r}: a wildcard may only be '*' or lead, as '*.example.com'")
        if _names_no_service(host):
            (at / "hosts" / i).warn(_short_host_warning(entry, namespace, host, own_namespace))
        hosts.append(EgressHost(namespace, host))
    if not hosts:
        raise (at / "hosts").error("at least one host is required, like './*'")
    return tuple(hosts)
