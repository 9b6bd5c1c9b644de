"""`minimesh analyze` on Gateways and the VirtualServices bound to them.

A Gateway opens Hosts at the ingress; VirtualServices that name it in
`gateways:` route them (proxy/ingress.py). Each half can be valid alone and
route nothing together. What is reported, with Istio's code where Istio's
analyzers have one:

    Error   IST0101 ReferencedResourceNotFound  `gateways:` names a Gateway that does not exist
                                                (Istio's virtualservice.GatewayAnalyzer), or a
                                                Gateway's selector matches no workload
                                                (gateway.IngressGatewayPortAnalyzer)
    Warning IST0132 VirtualServiceHostNotFoundInGateway  none of the VirtualService's hosts is one
                                                the Gateway's servers open to its namespace
    Error   IST0161 InvalidGatewayCredential  a server's tls.credentialName names no TLS Secret in
                                                istio-system, the gateway's namespace: that server's
                                                handshakes fail until the Secret is applied
    Warning MM0001  GatewayWithoutVirtualService  no VirtualService names the Gateway: every Host it
                                                opens gets 404 NR. Istio has no analyzer for this;
                                                minimesh reports it under its own code.

Pure: resources (and, when known, the running workloads) in, messages out.
"""

from __future__ import annotations

from .analysis_message import Message
from .gateway import Gateway, host_matches
from .namespaces import fqdn
from .resource import ROOT_NAMESPACE
from .secret import Secret
from .virtualservice import VirtualService

MESH = "mesh"


def check_gateways(resources, workloads=None) -> list[Message]:
    """`workloads`: [(namespace, labels)] of what runs, or None when not known (offline)."""
    gateways = {g.ref: g for g in resources if isinstance(g, Gateway)}
    services = [vs for vs in resources if isinstance(vs, VirtualService)]
    out = []
    for vs in services:
        for i, ref in enumerate(vs.gateways):
            if ref == MESH:
                continue
            gateway = gateways.get(ref)
            if gateway is None:
                known = ", ".join(sorted(gateways)) or "none"
                out.append(Message("IST0101", "ReferencedResourceNotFound",
                                   f"{_name(vs)} gateways[{i}]: Gateway '{ref}' does not exist (Gateways: {known}); "
                                   "the ingress applies this VirtualService nowhere"))
            elif not any(_serves(gateway, vs, host) for host in vs.hosts):
                opened = ", ".join(dict.fromkeys(f"{h.namespace}/{h.host}" for s in gateway.servers for h in s.hosts))
                out.append(Message("IST0132", "VirtualServiceHostNotFoundInGateway",
                                   f"{_name(vs)} hosts: none of {', '.join(fqdn(h) for h in vs.hosts)} is opened "
                                   f"to namespace '{vs.namespace}' by Gateway {ref} (its servers' hosts: {opened}); "
                                   "requests for them get 404 NR at the ingress"))
    out += _missing_credentials(resources)
    bound = {ref for vs in services for ref in vs.gateways}
    for ref, gateway in sorted(gateways.items()):
        if ref not in bound:
            out.append(Message("MM0001", "GatewayWithoutVirtualService",
                               f"Gateway {ref} servers: no VirtualService names it in 'gateways:', so every Host "
                               f"it opens gets 404 NR; bind a VirtualService with gateways: [{ref}]"))
        if workloads is not None and not any(gateway.selector.selects(labels) for _, labels in workloads):
            wanted = ", ".join(f"{k}={v}" for k, v in gateway.selector.items())
            out.append(Message("IST0101", "ReferencedResourceNotFound",
                               f"Gateway {ref} selector: no workload has the labels {wanted} (the lesson's ingress "
                               "gateway has istio=ingressgateway); no gateway serves this Gateway"))
    return out


def _missing_credentials(resources) -> list[Message]:
    """IST0161: a Gateway server's credentialName with no TLS Secret of that name where the gateway runs."""
    secrets = {r.name: r for r in resources if isinstance(r, Secret) and r.namespace == ROOT_NAMESPACE}
    out = []
    for gateway in (r for r in resources if isinstance(r, Gateway)):
        for i, server in enumerate(gateway.servers):
            name = server.tls.credential_name if server.tls is not None else None
            if name and name in secrets and server.tls.mode == "MUTUAL" and not secrets[name].ca_pem:
                out.append(Message("IST0161", "InvalidGatewayCredential",
                                   f"{_name(gateway)} servers[{i}].tls: mode MUTUAL, but Secret {ROOT_NAMESPACE}/"
                                   f"{name} has no ca.crt to verify client certificates by, so port {server.port} "
                                   "does not serve its hosts (handshakes fail); add --from-file=ca.crt=CA.crt "
                                   "(kubectl create secret generic) or use mode SIMPLE"))
            elif name and name not in secrets:
                out.append(Message("IST0161", "InvalidGatewayCredential",
                                   f"{_name(gateway)} servers[{i}].tls.credentialName: no TLS Secret {name!r} in "
                                   f"namespace {ROOT_NAMESPACE}, so port {server.port} does not serve "
                                   f"{', '.join(h.host for h in server.hosts)} (handshakes fail); create it: "
                                   f"kubectl create secret tls {name} -n {ROOT_NAMESPACE} --cert CERT --key KEY "
                                   "--dry-run=client -o yaml > secret.yaml, then minimesh apply secret.yaml"))
    return out


def _serves(gateway: Gateway, vs: VirtualService, host: str) -> bool:
    """Whether a server host of `gateway`, open to the VirtualService's namespace, overlaps `host` (Istio's test)."""
    host = fqdn(host)
    for server in gateway.servers:
        for allowed in server.hosts:
            space = gateway.namespace if allowed.namespace == "." else allowed.namespace
            if space not in ("*", vs.namespace):
                continue
            if host_matches(allowed.host, host) or host_matches(host, allowed.host):
                return True
    return False


def _name(r) -> str:
    return f"{r.kind} {r.namespace}/{r.name}"
