"""Which VirtualService the ingress gateway applies to a Host: Gateway servers and `gateways:` binding.

Istio's ingress gateway serves only what Gateway resources open and the
VirtualServices bound to them route:

1. a Gateway applies when its `selector` matches the gateway's labels
   (`istio: ingressgateway`); its servers on port 80 serve this listener
   (config/gateway.py says why 80);
2. a server serves a Host when one of its hosts matches it (`*`,
   `*.example.com` or the name itself); its `NAMESPACE/` part says which
   namespaces' VirtualServices may bind (`*` any, `.` the Gateway's own);
3. a VirtualService binds when its `gateways:` names that Gateway
   (`NAMESPACE/NAME`); a VirtualService without `gateways:` is for the mesh
   only, never here. Its hosts are matched against the Host too — a short
   host such as `pricing` means `pricing.default.svc.cluster.local`, so it
   does *not* match `Host: pricing` (Istio expands it the same way);
4. the most specific host wins (a name over `*.example.com` over `*`), as
   Envoy picks a virtual host; VirtualServices with that same host are
   merged, their routes in order of namespace and name (Istio orders them
   by creation time, which minimesh does not keep).

Nothing matches: 404 with flag NR, and a sentence saying which step failed.
The decision is pure and remembered per Host for the snapshot it was made
from; the cache is bounded, since the Host is the client's to choose.
"""

from __future__ import annotations

import dataclasses

from minimesh.config import Gateway, VirtualService
from minimesh.config.gateway import HTTP_PORT, host_matches
from minimesh.config.namespaces import exported_to, fqdn

CACHE_LIMIT = 1024  # Hosts remembered per snapshot; past it the cache starts over


def _specificity(pattern: str) -> tuple[int, int]:
    if pattern == "*":
        return (0, 0)
    return (1, len(pattern)) if pattern.startswith("*.") else (2, len(pattern))


class Ingress:
    """The routes of one gateway workload under one snapshot."""

    def __init__(self, resources, labels: dict, namespace: str):
        self.gateways = sorted((g for g in resources if isinstance(g, Gateway) and g.selector.selects(labels)),
                               key=lambda g: g.ref)
        refs = {g.ref for g in self.gateways}
        self.bound = sorted((vs for vs in resources if isinstance(vs, VirtualService) and refs & set(vs.gateways)
                             and exported_to(vs, namespace)), key=lambda vs: (vs.namespace, vs.name))
        self._cache: dict[str, tuple[VirtualService | None, str]] = {}

    def route(self, host: str) -> tuple[VirtualService | None, str]:
        """(the VirtualService to apply, '') or (None, why this Host gets 404 NR)."""
        found = self._cache.get(host)
        if found is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            found = self._cache[host] = self._decide(host)
        return found

    def _decide(self, host: str) -> tuple[VirtualService | None, str]:
        if not self.gateways:
            return None, "no Gateway selects this ingress gateway (labels istio: ingressgateway)"
        candidates, served_by = [], []
        for gateway in self.gateways:
            for server in gateway.servers:
                if server.port != HTTP_PORT:
                    continue
                for allowed in server.hosts:
                    if not allowed.matches(host):
                        continue
                    served_by.append(gateway.ref)
                    for vs in self.bound:
                        if gateway.ref not in vs.gateways or not _may_bind(allowed.namespace, gateway, vs):
                            continue
                        for pattern in vs.hosts:
                            if host_matches(fqdn(pattern), host):
                                candidates.append((_specificity(fqdn(pattern)), vs))
        if not candidates:
            if not served_by:
                return None, f"no server of a Gateway selecting this gateway serves Host {host!r}"
            return None, (f"no VirtualService bound to Gateway {', '.join(dict.fromkeys(served_by))} serves "
                          f"Host {host!r} (a short host like 'pricing' means pricing.default.svc.cluster.local)")
        best = max(c[0] for c in candidates)
        chosen = list(dict.fromkeys(vs for spec, vs in candidates if spec == best))
        if len(chosen) == 1:
            return chosen[0], ""
        merged = dataclasses.replace(chosen[0], http=tuple(r for vs in chosen for r in vs.http))
        return merged, ""


def _may_bind(namespace: str, gateway: Gateway, vs: VirtualService) -> bool:
    """A server host's `NAMESPACE/` part: which namespaces' VirtualServices it takes."""
    return namespace == "*" or vs.namespace == (gateway.namespace if namespace == "." else namespace)

