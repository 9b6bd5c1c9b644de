"""ServiceEntry: a host outside the mesh, added to the mesh's registry.

Without one, a request for `api.example.com` leaves the sidecar as plain
pass-through (Istio's ALLOW_ANY): no route, no timeout, no retries, no
DestinationRule — and under REGISTRY_ONLY no way out at all. A ServiceEntry
makes the host a first-class destination: VirtualServices and
DestinationRules for it apply, and its traffic is counted under its name.

    hosts       the names the app calls (no wildcards here)
    ports       the port the app calls, its protocol (HTTP) and targetPort
    resolution  how the sidecar finds the endpoints:
                  NONE    the host the app named, on the port it named
                          (Istio: the original destination address)
                  DNS     the endpoints' names (or the host itself), resolved
                          at connect time
                  STATIC  the endpoints' IP addresses, as written
    location    MESH_EXTERNAL (reported as leaving the mesh, no mTLS) or
                MESH_INTERNAL (part of the mesh: reported as a mesh service)
    endpoints   address, ports (port name -> number) and labels (for
                DestinationRule subsets)
    exportTo    which namespaces' proxies see the entry (read in load.py)

minimesh's sidecars see host names, not destination IPs (the app talks to
them as an HTTP proxy), so what works on IPs (`addresses`, CIDR matching) and
what needs another protocol than HTTP/1.1 is refused, with what Istio does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from .fields import At, check_fields, enum, integer, labels, mapping, require, sequence, string
from .resource import Labels, Resource
from .virtualservice import parse_host

RESOLUTIONS = ("NONE", "STATIC", "DNS")
LOCATIONS = ("MESH_EXTERNAL", "MESH_INTERNAL")
_OTHER_PROTOCOLS = ("HTTPS", "TLS", "TCP", "GRPC", "HTTP2", "MONGO", "MYSQL", "REDIS", "UDP", "GRPC-WEB")


@dataclass(frozen=True)
class ServicePort:
    number: int  # the port the app calls (http://host:number)
    name: str
    protocol: str = "HTTP"
    target_port: int | None = None  # where the endpoints listen, when not `number`


@dataclass(frozen=True)
class WorkloadEndpoint:
    address: str  # an IP (STATIC) or a DNS name (DNS)
    ports: tuple[tuple[str, int], ...] = ()  # port name -> the endpoint's own port
    labels: Labels = Labels()


@dataclass(frozen=True, kw_only=True)
class ServiceEntry(Resource):
    kind = "ServiceEntry"
    hosts: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    resolution: str = "NONE"
    location: str = "MESH_EXTERNAL"
    endpoints: tuple[WorkloadEndpoint, ...] = ()

    @property
    def external(self) -> bool:
        return self.location == "MESH_EXTERNAL"

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.number == number), None)

    def endpoint_addresses(self, host: str, port: ServicePort) -> list[tuple[str, Labels]]:
        """Where a request for `host` on `port` may go: ("address:port", labels) per endpoint."""
        target = port.target_port or port.number  # NONE refuses targetPort: there it is the port asked for
        if self.resolution == "NONE" or not self.endpoints:
            return [(f"{host}:{target}", Labels())]
        return [(f"{_bracketed(e.address)}:{dict(e.ports).get(port.name, target)}", e.labels) for e in self.endpoints]


def parse_service_entry(spec: dict, at: At, **meta) -> ServiceEntry:
    _refuse(spec, at, "addresses", "Istio would capture traffic sent to these IPs or CIDRs; minimesh's sidecars "
                                   "see the host name the app asks for (HTTP_PROXY), never a destination IP")
    _refuse(spec, at, "workloadSelector", "Istio would make the selected WorkloadEntries and pods the endpoints; "
                                          "list them under 'endpoints' instead")
    _refuse(spec, at, "subjectAltNames", "Istio would check the endpoints' certificates for these names; set "
                                         "subjectAltNames in the DestinationRule's trafficPolicy.tls instead")
    check_fields(spec, at, ("hosts", "ports", "resolution", "location", "endpoints"))
    hosts = []
    for i, value in enumerate(sequence(require(spec, "hosts", at), at / "hosts")):
        if isinstance(value, str) and "*" in value:
            raise (at / "hosts" / i).error(
                f"wildcard host {value!r} is not supported by minimesh; Istio would match every host under "
                "that domain (with resolution NONE); name each host")
        hosts.append(parse_host(value, at / "hosts" / i))
    if not hosts:
        raise (at / "hosts").error("at least one host is required, like ['api.example.com']")
    resolution = enum(spec.get("resolution", "NONE"), at / "resolution", RESOLUTIONS, ("DNS_ROUND_ROBIN", "DYNAMIC_DNS"))
    location = enum(spec.get("location", "MESH_EXTERNAL"), at / "location", LOCATIONS)
    ports = _parse_ports(require(spec, "ports", at), at / "ports", resolution)
    endpoints = tuple(_parse_endpoint(e, at / "endpoints" / i, resolution, ports)
                      for i, e in enumerate(sequence(spec.get("endpoints"), at / "endpoints")))
    if resolution == "NONE" and "endpoints" in spec:
        raise (at / "endpoints").error("resolution NONE sends to the address the app asked for, so it takes no "
                                       "endpoints (Istio refuses them too); use STATIC or DNS")
    if resolution == "STATIC" and not endpoints:
        raise (at / "endpoints").error("resolution STATIC needs endpoints with IP addresses")
    return ServiceEntry(hosts=tuple(hosts), ports=ports, resolution=resolution, location=location,
                        endpoints=endpoints, **meta)


def _parse_ports(value: Any, at: At, resolution: str) -> tuple[ServicePort, ...]:
    items = sequence(value, at)
    if len(items) != 1:
        raise at.error(f"minimesh builds one port per ServiceEntry (got {len(items)}); Istio would open a "
                       "listener per port — write one ServiceEntry per port")
    block, p_at = mapping(items[0], at / 0), at / 0
    check_fields(block, p_at, ("number", "name", "protocol", "targetPort"))
    number = integer(require(block, "number", p_at), p_at / "number", 1, 65535)
    name = string(require(block, "name", p_at), p_at / "name")
    protocol = string(block.get("protocol", "HTTP"), p_at / "protocol").upper()
    if protocol in _OTHER_PROTOCOLS:
        raise (p_at / "protocol").error(
            f"protocol {protocol} is not supported by minimesh: its sidecars proxy HTTP/1.1 requests only (no "
            f"CONNECT tunnels); Istio would route {protocol} traffic without reading it as HTTP; use HTTP (with a "
            "DestinationRule tls block to originate TLS)")
    if protocol != "HTTP":
        raise (p_at / "protocol").error(f"unknown protocol {protocol!r}; expected HTTP")
    target = integer(block["targetPort"], p_at / "targetPort", 1, 65535) if "targetPort" in block else None
    if target is not None and resolution == "NONE":
        raise (p_at / "targetPort").error("resolution NONE sends to the port the app asked for; Istio ignores "
                                          "targetPort there, so minimesh refuses it; use STATIC or DNS")
    return (ServicePort(number, name, protocol, target),)


def _parse_endpoint(value: Any, at: At, resolution: str, ports: tuple[ServicePort, ...]) -> WorkloadEndpoint:
    block = mapping(value, at)
    for key, what in (("network", "Istio would reach it through that network's gateway"),
                      ("locality", "Istio would prefer endpoints in the caller's locality"),
                      ("weight", "Istio would send it a share of traffic in proportion to the weight"),
                      ("serviceAccount", "Istio would expect the endpoint's sidecar to prove that identity")):
        _refuse(block, at, key, what)
    check_fields(block, at, ("address", "ports", "labels"))
    address = string(require(block, "address", at), at / "address")
    if address.startswith("unix://"):
        raise (at / "address").error("unix domain socket endpoints are not supported by minimesh; "
                                     "Istio would connect to the socket")
    if resolution == "STATIC":
        try:
            ipaddress.ip_address(address)
        except ValueError as e:
            raise (at / "address").error(f"resolution STATIC needs an IP address, not {address!r}; "
                                         "use resolution DNS for a name") from e
    endpoint_ports = []
    names = {p.name for p in ports}
    for name, number in mapping(block.get("ports"), at / "ports").items():
        if name not in names:
            raise (at / "ports" / name).error(f"no port named {name!r} in spec.ports (names: {', '.join(sorted(names))})")
        endpoint_ports.append((name, integer(number, at / "ports" / name, 1, 65535)))
    return WorkloadEndpoint(address, tuple(endpoint_ports), Labels(labels(block.get("labels"), at / "labels")))


def _refuse(block: dict, at: At, key: str, what_istio_does: str) -> None:
    if key in block:
        raise (at / key).error(f"field '{key}' is not supported by minimesh; {what_istio_does}")


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address
