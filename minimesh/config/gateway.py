"""Gateway: which Hosts an ingress gateway serves, on which port.

A Gateway selects gateway workloads by label (the lesson's ingress gateway
carries `istio: ingressgateway`, as Istio's does) and lists servers: a port
and the hosts served there. It routes nothing itself: VirtualServices that
name it in `gateways:` do (proxy/ingress.py). A Host that no server and no
bound VirtualService serve gets 404 with flag NR, as on Istio.

Hosts, as Istio reads them: `*` (any), `*.example.com` (a suffix), an FQDN
(`shop.example.com`, `catalog.default.svc.cluster.local`), each optionally
behind `NAMESPACE/`, which limits the VirtualServices that may bind to this
server to that namespace (`./` the Gateway's own, `*/` any). Istio refuses
short names (`pricing`): a learner who wants `curl -H 'Host: pricing'` serves
`*` and matches the authority in the VirtualService.

Ports: minimesh's ingress gateway has one plain HTTP listener, the lesson's
gateway port, which stands for port 80 of Istio's ingress gateway Service.
A server on port 80 with protocol HTTP is served there. TLS termination
(`tls`, protocol HTTPS) and other ports are refused at apply, with what
Istio would do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .fields import At, check_fields, enum, integer, labels, mapping, require, sequence, string
from .resource import Labels, Resource

HTTP_PORT = 80  # the port of Istio's ingress gateway Service that the lesson's gateway port stands for
PROTOCOLS = ("HTTP",)
_ISTIO_PROTOCOLS = ("HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS")
_WILDCARD_HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$")
_NAMESPACE = re.compile(r"^(\*|\.|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$")


@dataclass(frozen=True)
class ServerHost:
    namespace: str  # "*" any, "." the Gateway's own, or a namespace
    host: str  # "*", "*.example.com" or an FQDN

    def matches(self, host: str) -> bool:
        return host_matches(self.host, host)


@dataclass(frozen=True)
class Server:
    port: int
    protocol: str
    hosts: tuple[ServerHost, ...]
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class Gateway(Resource):
    kind = "Gateway"
    selector: Labels = Labels()
    servers: tuple[Server, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def host_matches(pattern: str, host: str) -> bool:
    """Istio's host matching: '*' anything, '*.example.com' any name ending so, else equal."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def parse_gateway(spec: dict, at: At, **meta) -> Gateway:
    check_fields(spec, at, ("selector", "servers"))
    selector = Labels(labels(spec.get("selector"), at / "selector"))
    servers = tuple(_parse_server(s, at / "servers" / i) for i, s in enumerate(sequence(spec.get("servers"), at / "servers")))
    if not servers:
        raise (at / "servers").error("at least one server is required (a port and the hosts served on it)")
    return Gateway(selector=selector, servers=servers, **meta)


def _parse_server(value: Any, at: At) -> Server:
    block = mapping(value, at)
    if "tls" in block:
        raise (at / "tls").error(
            "'tls' is not supported by minimesh's ingress gateway yet: on Istio it terminates TLS (SIMPLE, with "
            "credentialName or serverCertificate/privateKey) or requires client certificates (MUTUAL); "
            "serve plain HTTP on port 80 instead")
    check_fields(block, at, ("port", "hosts", "name"), {
        "bind": "Istio would listen on that address only, or on a Unix socket",
        "defaultEndpoint": "Istio would forward the traffic to that address of the gateway's own pod (sidecar ingress)",
    })
    port = mapping(require(block, "port", at), at / "port")
    check_fields(port, at / "port", ("number", "protocol", "name"), {
        "targetPort": "Istio would use it only for a ServiceEntry's workloads; a Gateway's port takes none",
    })
    number = integer(require(port, "number", at / "port"), at / "port" / "number", 1, 65535)
    protocol = enum(require(port, "protocol", at / "port"), at / "port" / "protocol", PROTOCOLS, _ISTIO_PROTOCOLS)
    if number != HTTP_PORT:
        raise (at / "port" / "number").error(
            f"port {number} is not served by minimesh's ingress gateway: its one listener (the lesson's gateway "
            f"port) stands for port {HTTP_PORT} of Istio's ingress gateway Service; use {HTTP_PORT}")
    hosts = tuple(_parse_host(h, at / "hosts" / i) for i, h in enumerate(sequence(require(block, "hosts", at), at / "hosts")))
    if not hosts:
        raise (at / "hosts").error("at least one host is required, like '*' or 'shop.example.com'")
    name = string(block["name"], at / "name") if "name" in block else None
    return Server(number, protocol, hosts, name)


def _parse_host(value: Any, at: At) -> ServerHost:
    text = string(value, at).lower()
    namespace, slash, host = text.rpartition("/")
    if not slash:
        namespace = "*"
    elif not _NAMESPACE.match(namespace):
        raise at.error(f"{namespace!r} in {text!r} is not a namespace; write NAMESPACE/HOST, ./HOST or */HOST")
    if not _WILDCARD_HOST.match(host):
        raise at.error(f"invalid host {host!r}; use '*', '*.example.com' or a name like 'shop.example.com'")
    if host != "*" and "." not in host:
        raise at.error(f"short name {host!r} is not allowed in a Gateway (Istio refuses it too); serve '*' and "
                       "route by authority in the VirtualService, or use an FQDN like "
                       f"'{host}.default.svc.cluster.local'")
    return ServerHost(namespace, host)
