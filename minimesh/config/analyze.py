"""`minimesh analyze`: what `istioctl analyze` would say about a set of resources.

Each resource can be valid alone and still be wrong with the others, or
with the mesh that runs: a route to a subset no DestinationRule defines, a
policy whose selector matches no workload. Istio accepts all of these and
reports them with a message code; so does minimesh, with Istio's code and
name where Istio has one, so what a learner sees here is what
`istioctl analyze` would print on a cluster:

    Error   IST0101 ReferencedResourceNotFound  a subset, host or port named but not there
    Error   IST0109 ConflictingMeshGatewayVirtualServiceHosts  two VirtualServices for one host
    Warning IST0127 NoMatchingWorkloadsFound    a policy's selector matches no workload
    Warning IST0130 VirtualServiceUnreachableRule  a route after one that matches everything (or all it matches)
    Info    IST0131 VirtualServiceIneffectiveMatch  a match an earlier route already takes

and the Gateway checks of gateway_checks.py (IST0101 for a missing Gateway,
IST0132, and MM0001, minimesh's own code for a Gateway nothing binds to).

(the levels are Istio's; `istioctl analyze` exits 79 when it finds an Error,
and so does `minimesh analyze` — `apply` only warns, and applies).

The checks are pure: resources in, messages out. What runs (services and
their workloads' labels) is passed in when known, and the host and
selector checks are skipped when it is not (e.g. analyzing files offline).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from .analysis_message import Message
from .authorization import AuthorizationPolicy
from .references import check_references, unknown_hosts
from .gateway_checks import check_gateways
from .requestauthentication import RequestAuthentication
from .resource import DEFAULT_NAMESPACE, ROOT_NAMESPACE, Resource
from .security import PeerAuthentication
from .sidecar_resource import Sidecar
from .trafficpolicy import SERVICE_PORT
from .virtualservice import VirtualService


Workload = tuple[str, Mapping[str, str]]  # (namespace, labels) of one running workload


def analyze(resources: Iterable[Resource], services: set[str] | None = None,
            workloads: Iterable[Workload | Mapping[str, str]] | None = None) -> list[Message]:
    """Every cross-resource problem, in a stable order; `services`/`workloads` None: not known.

    `services` are service keys (config/namespaces.py: 'pricing', 'catalog.foo.svc.cluster.local');
    `workloads` are (namespace, labels), or bare labels for a workload in `default`.

    Two resources with one kind, namespace and name: the later one stands, as with `kubectl apply`
    of the files in that order (a lesson's steps rewrite the same VirtualService).
    """
    resources = sorted({r.key: r for r in resources}.values(), key=lambda r: r.key)
    found = [Message("IST0101", "ReferencedResourceNotFound", text) for text in check_references(resources)]
    found += _destination_ports(resources)
    if services is not None:
        found += _unknown_hosts(resources, services)
    found += _conflicting_hosts(resources)
    found += _unreachable_routes(resources)
    if workloads is not None:
        workloads = [(DEFAULT_NAMESPACE, dict(w)) if isinstance(w, Mapping) else (w[0], dict(w[1]))
                     for w in workloads]
        found += _selecting_nothing(resources, workloads)
    found += check_gateways(resources, workloads)
    return found


def _name(r: Resource) -> str:
    return f"{r.kind} {r.namespace}/{r.name}"


def _destination_ports(resources) -> list[Message]:
    out = []
    for vs in (r for r in resources if isinstance(r, VirtualService)):
        for i, route in enumerate(vs.http):
            targets = [(f"http[{i}].route[{j}].destination", rd.destination, "requests routed there get 503 NC")
                       for j, rd in enumerate(route.route)]
            targets += [(f"http[{i}].{m.field}", m.destination, "no copy is sent") for m in route.mirrors]
            for where, dest, effect in targets:
                if dest.port is not None and dest.port != SERVICE_PORT:
                    out.append(Message("IST0101", "ReferencedResourceNotFound",
                                       f"{_name(vs)} {where}.port: host '{dest.host}' has no port {dest.port} "
                                       f"(minimesh services answer on {SERVICE_PORT}); {effect}"))
    return out


def _unknown_hosts(resources, services: set[str]) -> list[Message]:
    # references.unknown_hosts words each line for `minimesh apply`, code included; here the code is ours.
    suffix = " (istioctl analyze: IST0101 ReferencedResourceNotFound)"
    return [Message("IST0101", "ReferencedResourceNotFound", line.removesuffix(suffix))
            for line in unknown_hosts(resources, services)]


def _conflicting_hosts(resources) -> list[Message]:
    owners: dict[str, list[VirtualService]] = {}
    # Istio's check is for the mesh: VirtualServices bound to one Gateway with one host are merged there.
    for vs in (r for r in resources if isinstance(r, VirtualService) and r.for_mesh):
        for host in dict.fromkeys(vs.hosts):
            owners.setdefault(host, []).append(vs)
    out = []
    for host, services in sorted(owners.items()):
        if len(services) > 1:
            names = ", ".join(f"{v.namespace}/{v.name}" for v in services)
            first = f"{services[0].namespace}/{services[0].name}"
            out += [Message("IST0109", "ConflictingMeshGatewayVirtualServiceHosts",
                            f"{_name(vs)} hosts: the VirtualServices {names} all claim host '{host}'; sidecars "
                            f"use only the first ({first}): merge their routes into one") for vs in services]
    return out


def _unreachable_routes(resources) -> list[Message]:
    """IST0130: a route no request can reach; IST0131: one of its matches an earlier route already takes."""
    out = []
    for vs in (r for r in resources if isinstance(r, VirtualService)):
        seen: dict = {}  # match entry -> the first route that has it (its name in `name` ignored, as Istio)
        for i, route in enumerate(vs.http):
            earlier = [k for k, prev in enumerate(vs.http[:i]) if not prev.match]
            if earlier:
                out.append(Message("IST0130", "VirtualServiceUnreachableRule",
                                   f"{_name(vs)} http[{i}]: never used, because http[{earlier[0]}] has no match "
                                   "and takes every request first; move the catch-all route last"))
                continue
            taken = [(j, seen[_key(m)]) for j, m in enumerate(route.match) if _key(m) in seen]
            if route.match and len(taken) == len(route.match):
                out.append(Message("IST0130", "VirtualServiceUnreachableRule",
                                   f"{_name(vs)} http[{i}]: never used, because every one of its matches is "
                                   f"already in http[{taken[0][1]}], which comes first"))
            else:
                out += [Message("IST0131", "VirtualServiceIneffectiveMatch",
                                f"{_name(vs)} http[{i}].match[{j}]: never used, because http[{first}] has the same "
                                "match and comes first") for j, first in taken]
            for m in route.match:
                seen.setdefault(_key(m), i)
    return out


def _key(match):
    return dataclasses.replace(match, name=None)


def _selecting_nothing(resources, workloads: list[Workload]) -> list[Message]:
    """IST0127: a policy (or Sidecar) whose selector matches no workload it could apply to.

    A selector reaches the workloads of the resource's namespace; an AuthorizationPolicy's or
    RequestAuthentication's in the root namespace reaches every namespace (as they apply, proxy/inbound).
    """
    out = []
    for r in resources:
        if isinstance(r, (PeerAuthentication, AuthorizationPolicy, RequestAuthentication)):
            selector = r.selector
        elif isinstance(r, Sidecar):
            selector = r.workload_selector
        else:
            continue
        everywhere = r.namespace == ROOT_NAMESPACE and isinstance(r, (AuthorizationPolicy, RequestAuthentication))
        if selector is None or any(selector.selects(labels) for namespace, labels in workloads
                                   if everywhere or namespace == r.namespace):
            continue
        wanted = ", ".join(f"{k}={v}" for k, v in selector.items())
        where = "" if everywhere else f" in namespace '{r.namespace}'"
        field = "workloadSelector" if isinstance(r, Sidecar) else "selector"
        what = "this Sidecar applies" if isinstance(r, Sidecar) else "the policy applies"
        out.append(Message("IST0127", "NoMatchingWorkloadsFound",
                           f"{_name(r)} {field}: no workload{where} has the labels {wanted}; {what} to "
                           "nothing"))
    return out
