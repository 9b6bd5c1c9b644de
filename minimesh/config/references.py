"""Cross-resource checks, the kind `istioctl analyze` reports.

Each resource can be valid alone and still be wrong together with the
others: a VirtualService that sends traffic to subset v2 of pricing is
broken if no DestinationRule for pricing defines v2 (Envoy answers 503 NC:
the cluster does not exist). Istio accepts such a config and `istioctl
analyze` reports it (IST0101 ReferencedResourceNotFound); so these are
returned as lines of text, not raised: `minimesh apply` warns, a lesson
check may fail.
"""

from collections.abc import Iterable

from .destinationrule import DestinationRule
from .resource import Resource
from .serviceentry import ServiceEntry
from .virtualservice import Destination, VirtualService


def check_references(resources: Iterable[Resource]) -> list[str]:
    resources = list(resources)
    subsets: dict[str, set[str]] = {}
    for r in resources:
        if isinstance(r, DestinationRule):
            subsets.setdefault(r.host, set()).update(s.name for s in r.subsets)
    problems = []
    for vs in resources:
        if not isinstance(vs, VirtualService):
            continue
        for i, route in enumerate(vs.http):
            targets: list[tuple[str, Destination]] = [
                (f"http[{i}].route[{j}]", rd.destination) for j, rd in enumerate(route.route)
            ]
            targets += [(f"http[{i}].{m.field}", m.destination) for m in route.mirrors]
            for where, dest in targets:
                if dest.subset is None or dest.subset in subsets.get(dest.host, set()):
                    continue
                if dest.host not in subsets:
                    fix = f"no DestinationRule for host '{dest.host}' exists; add one defining subset '{dest.subset}'"
                else:
                    known = ", ".join(sorted(subsets[dest.host])) or "none"
                    fix = f"the DestinationRule for '{dest.host}' defines: {known}"
                problems.append(
                    f"VirtualService {vs.namespace}/{vs.name} {where}: subset '{dest.subset}' "
                    f"of host '{dest.host}' is not defined ({fix}); accepted, as on Istio, "
                    "and requests routed there get 503 NC"
                )
    return problems


def unknown_hosts(resources: Iterable[Resource], services: set[str]) -> list[str]:
    """Hosts a VirtualService or DestinationRule names that no service of the mesh answers to.

    Istio accepts them (a typo like 'paymnets' is a valid host) and the
    config simply never applies — or answers 503 NR/NC — while `istioctl
    analyze` reports IST0101 ReferencedResourceNotFound. minimesh does the
    same: accepts, and `minimesh apply` warns with these lines.
    """
    resources = list(resources)
    known = ", ".join(sorted(services)) or "none running"
    # A ServiceEntry makes its hosts part of the mesh's registry.
    services = set(services) | {h for r in resources if isinstance(r, ServiceEntry) for h in r.hosts}
    problems = []
    for r in resources:
        if isinstance(r, VirtualService):
            # Bound only to gateways, its hosts are Host header names, not services.
            named = [(f"hosts[{i}]", h) for i, h in enumerate(r.hosts)] if r.for_mesh else []
            named += [(f"http[{i}].route[{j}].destination.host", rd.destination.host)
                      for i, route in enumerate(r.http) for j, rd in enumerate(route.route)]
        elif isinstance(r, DestinationRule):
            named = [("host", r.host)]
        else:
            continue
        seen = set()
        for where, host in named:
            if host in services or host in seen:
                continue
            seen.add(host)
            problems.append(f"{r.kind} {r.namespace}/{r.name} {where}: host '{host}' is not a service of the mesh "
                            f"(services: {known}); accepted, as Istio does, but it routes nothing "
                            "(istioctl analyze: IST0101 ReferencedResourceNotFound)")
    return problems
