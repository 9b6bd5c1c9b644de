"""Namespaces, as Istio has them: whose `catalog` a short host means, and who sees a resource.

Every resource lives in a namespace (`metadata.namespace`, default
`default`). Istio's rules, which minimesh follows:

- A short host is read in the *resource's* namespace, not the caller's:
  `catalog` in a VirtualService of namespace `foo` means
  `catalog.foo.svc.cluster.local`. An FQDN means itself. A host with a dot
  that is not an FQDN (`catalog.foo`) is not expanded by Istio's config
  either; it names an external host.
- `exportTo` decides which namespaces' proxies see a VirtualService or
  DestinationRule: `*` every namespace (the default), `.` its own, or
  namespace names.
- The root namespace `istio-system` holds mesh-wide defaults: a
  PeerAuthentication or AuthorizationPolicy there without a selector covers
  every workload; the same policy in any other namespace covers that
  namespace only.

Inside minimesh a service is known by one key: its short name in `default`
(`catalog`, so every lesson, metric and log line reads as before) and its
FQDN anywhere else (`catalog.foo.svc.cluster.local`). `service_key` makes
that key; `resolve` reads a Host header the way a pod's DNS search path does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .fields import At, sequence, string
from .resource import CLUSTER_DOMAIN, DEFAULT_NAMESPACE, Resource, short_host

_DNS_LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def service_key(name: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The key minimesh knows a service by: 'catalog' in default, its FQDN elsewhere."""
    return short_host(f"{name}.{namespace}.{CLUSTER_DOMAIN}")


def qualify(host: str, namespace: str) -> str:
    """A host as written in a resource of `namespace`, as the service key it names."""
    host = host.lower()
    if "." in host or "*" in host:
        return short_host(host)
    return service_key(host, namespace)


def fqdn(key: str) -> str:
    """A service key as the FQDN Istio matches Host headers against at a gateway."""
    return key if "." in key or "*" in key else f"{key}.{DEFAULT_NAMESPACE}.{CLUSTER_DOMAIN}"


def namespace_of_key(key: str) -> str | None:
    """'catalog' -> 'default'; 'catalog.foo.svc.cluster.local' -> 'foo'; an external host -> None."""
    if "." not in key:
        return DEFAULT_NAMESPACE
    parts = key.split(".")
    if key.endswith("." + CLUSTER_DOMAIN) and len(parts) == 5:
        return parts[1]
    return None


def workload_name(service: str, namespace: str | None, kind: str = "sidecar") -> str:
    """How telemetry names a registered workload's service: 'catalog' in default, 'catalog.foo' in foo.

    The ingress gateway is 'gateway' wherever it runs. Sidecars report themselves by the same name
    (pki/spiffe.py reporter_of), so the control plane can join what runs with what is reported.
    """
    if kind == "gateway" or namespace in (None, "", DEFAULT_NAMESPACE):
        return service
    return f"{service}.{namespace}"


def telemetry_name(key: str) -> str:
    """A service key as telemetry shows it: 'catalog' stays; 'catalog.foo.svc.cluster.local' is 'catalog.foo'.

    The same name a workload in `foo` reports itself by (pki/spiffe.py reporter_of); external hosts as written.
    """
    namespace = namespace_of_key(key)
    return key if namespace in (None, DEFAULT_NAMESPACE) else f"{key.split('.', 1)[0]}.{namespace}"


def resolve(host: str, namespace: str, known) -> str:
    """A Host a workload in `namespace` sent, as a service key when it names a mesh service.

    Like Kubernetes DNS from a pod of `namespace`: `catalog` is tried in the
    caller's own namespace, `catalog.foo` and `catalog.foo.svc` in `foo`.
    Anything else is returned as written (an external host).
    """
    host = host.lower()
    if "." not in host:
        return host if namespace == DEFAULT_NAMESPACE else service_key(host, namespace)
    parts = host.split(".")
    if len(parts) in (2, 3) and (len(parts) == 2 or parts[2] == "svc"):
        candidate = service_key(parts[0], parts[1])
        if candidate in known or (candidate, None) in known:
            return candidate
    return short_host(host)


def parse_export_to(value: Any, at: At) -> tuple[str, ...]:
    """exportTo: ['*'] (default), ['.'], or namespace names; Istio refuses '~' mixed with others."""
    names = tuple(string(item, at / i) for i, item in enumerate(sequence(value, at)))
    if not names:
        return ("*",)
    for i, name in enumerate(names):
        if name in ("*", "."):
            continue
        if name == "~":
            raise (at / i).error("'~' (export to no namespace) is not supported by minimesh: on Istio it hides "
                                 "the resource from every proxy; delete the resource instead")
        if not name or not set(name) <= _DNS_LABEL_CHARS or len(name) > 63:
            raise (at / i).error(f"{name!r} is not a namespace name; use '.', '*' or a namespace like 'foo'")
    return names


def exported_to(resource: Resource, namespace: str) -> bool:
    """Whether proxies in `namespace` see `resource` (exportTo)."""
    for name in resource.export_to:
        if name == "*" or name == namespace or (name == "." and resource.namespace == namespace):
            return True
    return False


def in_namespace(resource: Resource) -> Resource:
    """The resource with every host it names turned into a service key, read in its own namespace."""
    ns = resource.namespace
    if resource.kind == "VirtualService":
        def dest(d):
            return dataclasses.replace(d, host=qualify(d.host, ns))
        http = tuple(dataclasses.replace(
            route,
            route=tuple(dataclasses.replace(rd, destination=dest(rd.destination)) for rd in route.route),
            mirrors=tuple(dataclasses.replace(m, destination=dest(m.destination)) for m in route.mirrors),
        ) for route in resource.http)
        return dataclasses.replace(resource, hosts=tuple(qualify(h, ns) for h in resource.hosts), http=http)
    if resource.kind == "DestinationRule":
        return dataclasses.replace(resource, host=qualify(resource.host, ns))
    return resource

