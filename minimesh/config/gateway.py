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

Ports: minimesh's ingress gateway listens where Istio's ingress gateway
Service does, on two ports: port 80 (HTTP; the lesson's gateway port stands
for it) and port 443 (HTTPS; the lesson's TLS port). A server on 80 speaks
HTTP; with `tls.httpsRedirect: true` it answers every request with a 301 to
https, as Envoy does. A server on 443 speaks HTTPS with `tls.mode: SIMPLE`:
the gateway terminates TLS with the certificate of the TLS Secret that
`tls.credentialName` names in the gateway's namespace (istio-system,
secret.py), chosen by the client's SNI among the servers' hosts, and then
routes as for HTTP. `mode: MUTUAL` also requires a client certificate that
chains to the Secret's `ca.crt`. Other ports, protocols and TLS modes are refused at
apply, with what Istio would do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .fields import At, boolean, check_fields, enum, integer, labels, mapping, require, sequence, string
from .resource import Labels, Resource

HTTP_PORT = 80  # the port of Istio's ingress gateway Service that the lesson's gateway port stands for
HTTPS_PORT = 443  # ... and the one its TLS port stands for
PROTOCOLS = ("HTTP", "HTTPS")
PROTOCOL_OF_PORT = {HTTP_PORT: "HTTP", HTTPS_PORT: "HTTPS"}
_ISTIO_PROTOCOLS = ("GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS")
TLS_MODES = ("SIMPLE", "MUTUAL")
_ISTIO_TLS_MODES = {
    "PASSTHROUGH": "Istio would forward the encrypted stream by SNI to the backend, unterminated (also the "
                   "default when 'mode' is left out)",
    "OPTIONAL_MUTUAL": "Istio would ask for a client certificate and verify one if sent",
    "AUTO_PASSTHROUGH": "Istio would pass the stream through by SNI to a mesh service, for multi-cluster",
    "ISTIO_MUTUAL": "Istio would require the mesh's own mTLS certificates from clients (for east-west gateways)",
}
_ISTIO_TLS_FIELDS = {
    "caCertCredentialName": "Istio would verify client certificates against the CA in that Secret (MUTUAL)",
    "insecureSkipVerify": "Istio would accept any client certificate (MUTUAL)",
    "serverCertificate": "Istio would read the certificate from that file in the gateway pod; minimesh reads it "
                         "from a Secret: use credentialName",
    "privateKey": "Istio would read the key from that file in the gateway pod; use credentialName",
    "caCertificates": "Istio would verify client certificates against that file (MUTUAL)",
    "caCrl": "Istio would refuse client certificates that file revokes (MUTUAL)",
    "credentialNames": "Istio would serve several certificates (e.g. RSA and ECDSA) from these Secrets; "
                       "use one credentialName",
    "tlsCertificates": "Istio would serve several certificates from these files; use one credentialName",
    "subjectAltNames": "Istio would accept only client certificates with these SANs (MUTUAL)",
    "verifyCertificateSpki": "Istio would pin client certificates by public key (MUTUAL)",
    "verifyCertificateHash": "Istio would pin client certificates by hash (MUTUAL)",
    "minProtocolVersion": "Istio would refuse clients below that TLS version (minimesh: TLS 1.2 and up)",
    "maxProtocolVersion": "Istio would refuse clients above that TLS version",
    "cipherSuites": "Istio would offer only these cipher suites",
}
_WILDCARD_HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$")
_NAMESPACE = re.compile(r"^(\*|\.|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$")


@dataclass(frozen=True)
class ServerHost:
    namespace: str  # "*" any, "." the Gateway's own, or a namespace
    host: str  # "*", "*.example.com" or an FQDN

    def matches(self, host: str) -> bool:
        return host_matches(self.host, host)


@dataclass(frozen=True)
class ServerTLS:
    mode: str | None = None  # "SIMPLE" or "MUTUAL" on an HTTPS server; None on an HTTP server
    credential_name: str | None = None  # the TLS Secret in the gateway's namespace (secret.py)
    https_redirect: bool = False  # an HTTP server: 301 every request to https


@dataclass(frozen=True)
class Server:
    port: int
    protocol: str
    hosts: tuple[ServerHost, ...]
    name: str | None = None
    tls: ServerTLS | None = None


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
    check_fields(block, at, ("port", "hosts", "name", "tls"), {
        "bind": "Istio would listen on that address only, or on a Unix socket",
        "defaultEndpoint": "Istio would forward the traffic to that address of the gateway's own pod (sidecar ingress)",
    })
    port = mapping(require(block, "port", at), at / "port")
    check_fields(port, at / "port", ("number", "protocol", "name"), {
        "targetPort": "Istio would use it only for a ServiceEntry's workloads; a Gateway's port takes none",
    })
    number = integer(require(port, "number", at / "port"), at / "port" / "number", 1, 65535)
    protocol = enum(require(port, "protocol", at / "port"), at / "port" / "protocol", PROTOCOLS, _ISTIO_PROTOCOLS)
    if number not in PROTOCOL_OF_PORT:
        raise (at / "port" / "number").error(
            f"port {number} is not served by minimesh's ingress gateway: its listeners stand for ports "
            f"{HTTP_PORT} (HTTP) and {HTTPS_PORT} (HTTPS) of Istio's ingress gateway Service; use one of them")
    if protocol != PROTOCOL_OF_PORT[number]:
        raise (at / "port" / "protocol").error(
            f"port {number} of minimesh's ingress gateway speaks {PROTOCOL_OF_PORT[number]}, not {protocol}: "
            f"serve HTTP on {HTTP_PORT} and HTTPS on {HTTPS_PORT}, as Istio's default gateway Service does")
    tls = _parse_tls(block.get("tls"), at / "tls", protocol)
    hosts = tuple(_parse_host(h, at / "hosts" / i) for i, h in enumerate(sequence(require(block, "hosts", at), at / "hosts")))
    if not hosts:
        raise (at / "hosts").error("at least one host is required, like '*' or 'shop.example.com'")
    name = string(block["name"], at / "name") if "name" in block else None
    return Server(number, protocol, hosts, name, tls)


def _parse_tls(value: Any, at: At, protocol: str) -> ServerTLS | None:
    if value is None:
        if protocol == "HTTPS":
            raise at.error("an HTTPS server needs 'tls' (mode: SIMPLE and the credentialName of a TLS Secret "
                           "in istio-system), as on Istio")
        return None
    block = mapping(value, at)
    check_fields(block, at, ("mode", "credentialName", "httpsRedirect"), _ISTIO_TLS_FIELDS)
    redirect = boolean(block.get("httpsRedirect", False), at / "httpsRedirect")
    if protocol == "HTTP":
        extra = sorted(set(block) - {"httpsRedirect"})
        if extra:
            raise (at / extra[0]).error("an HTTP server takes only 'httpsRedirect' under tls: TLS settings "
                                        "belong to a server on port 443 with protocol HTTPS")
        return ServerTLS(https_redirect=redirect)
    if "mode" not in block:
        raise (at / "mode").error("'mode' is required: SIMPLE terminates TLS here; left out, Istio would use "
                                  "PASSTHROUGH (forward the encrypted stream by SNI), which minimesh does not do")
    mode = string(block["mode"], at / "mode")
    if mode in _ISTIO_TLS_MODES:
        raise (at / "mode").error(f"mode {mode} is not supported by minimesh: {_ISTIO_TLS_MODES[mode]}; use SIMPLE "
                                  "(or MUTUAL, with a ca.crt in the Secret)")
    mode = enum(mode, at / "mode", TLS_MODES)
    if "credentialName" not in block:
        raise (at / "credentialName").error(
            "'credentialName' is required: the TLS Secret in istio-system with tls.crt and tls.key"
            + (" (and ca.crt, the CA client certificates must chain to)" if mode == "MUTUAL" else "")
            + "; minimesh reads no certificate files")
    credential = string(block["credentialName"], at / "credentialName")
    return ServerTLS(mode=mode, credential_name=credential, https_redirect=redirect)


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
