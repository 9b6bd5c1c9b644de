"""Which VirtualService the ingress gateway applies to a Host: Gateway servers and `gateways:` binding.

Istio's ingress gateway serves only what Gateway resources open and the
VirtualServices bound to them route:

1. a Gateway applies when its `selector` matches the gateway's labels
   (`istio: ingressgateway`); its servers on port 80 serve the HTTP
   listener, those on 443 the TLS one (config/gateway.py says why). Over
   TLS only the server whose certificate the client's SNI chose serves
   (Envoy's filter chain per server, each with its own routes: a Host of
   another server gets 404 there);
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
A VirtualService found through an HTTP server with `tls.httpsRedirect`
is not applied: the answer is a 301 to https (Envoy's `require_tls`).
The decision is pure and remembered per Host for the snapshot it was made
from; the cache is bounded, since the Host is the client's to choose.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from minimesh.config import Gateway, VirtualService
from minimesh.config.gateway import HTTP_PORT, Server, host_matches
from minimesh.config.namespaces import exported_to, fqdn

CACHE_LIMIT = 1024  # Hosts remembered per snapshot; past it the cache starts over


@dataclass(frozen=True)
class Route:
    virtual_service: VirtualService | None
    no_route: str = ""  # why this Host gets 404 NR
    https_redirect: bool = False  # served through an HTTP server with tls.httpsRedirect: 301 to https


def host_specificity(pattern: str) -> tuple[int, int]:
    """How specific a host pattern is, to rank matches: a name over '*.example.com' over '*'."""
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
        self._cache: dict[tuple, Route] = {}

    def route(self, host: str, port: int = HTTP_PORT, server: Server | None = None) -> "Route":
        """The VirtualService to apply, or why this Host gets 404 NR, or a 301 to https.

        `port` is the Gateway server port the request came in on; over TLS,
        `server` is the one server whose certificate the SNI chose.
        """
        key = (host, port, server)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            found = self._cache[key] = self._decide(host, port, server)
        return found

    def _decide(self, host: str, port: int, only: Server | None) -> "Route":
        if not self.gateways:
            return Route(None, "no Gateway selects this ingress gateway (labels istio: ingressgateway)")
        candidates, served_by = [], []
        for gateway in self.gateways:
            for server in gateway.servers:
                if server.port != port or (only is not None and server != only):
                    continue
                for allowed in server.hosts:
                    if not allowed.matches(host):
                        continue
                    served_by.append(gateway.ref)
                    for vs in self.bound:
                        if gateway.ref not in vs.gateways or not _may_bind(allowed.namespace, gateway, vs):
                            continue
                        redirect = server.tls is not None and server.tls.https_redirect
                        for pattern in vs.hosts:
                            if host_matches(fqdn(pattern), host):
                                candidates.append((host_specificity(fqdn(pattern)), vs, redirect))
        if not candidates:
            on = f" on port {port}" if port != HTTP_PORT else ""
            if not served_by:
                return Route(None, f"no server of a Gateway selecting this gateway serves Host {host!r}{on}")
            return Route(None, f"no VirtualService bound to Gateway {', '.join(dict.fromkeys(served_by))} serves "
                               f"Host {host!r}{on} (a short host like 'pricing' means "
                               "pricing.default.svc.cluster.local)")
        best = max(c[0] for c in candidates)
        chosen = list(dict.fromkeys(vs for spec, vs, _ in candidates if spec == best))
        redirect = any(r for spec, _, r in candidates if spec == best)
        if len(chosen) == 1:
            return Route(chosen[0], "", redirect)
        merged = dataclasses.replace(chosen[0], http=tuple(r for vs in chosen for r in vs.http))
        return Route(merged, "", redirect)


def _may_bind(namespace: str, gateway: Gateway, vs: VirtualService) -> bool:
    """A server host's `NAMESPACE/` part: which namespaces' VirtualServices it takes."""
    return namespace == "*" or vs.namespace == (gateway.namespace if namespace == "." else namespace)

