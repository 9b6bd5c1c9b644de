"""Admission of a registration: every field checked before it reaches the registry.

A registration becomes an endpoint in every sidecar's snapshot, so one bad
field would travel to the whole mesh (the security review's `not-an-address`
made every sidecar NACK every later snapshot). The rules are Kubernetes' own,
because the names end up where Kubernetes names go:

    service, version          a DNS-1123 label: lower-case letters, digits and
                              '-', starting and ending alphanumeric, at most 63
    instance                  a DNS-1123 subdomain: labels joined by '.', at most 253
    labels                    at most 64; keys [prefix/]name, names and values
                              alphanumeric with '-', '_', '.', at most 63 (values may be empty)
    addresses.<role>          host:port — an IPv4/IPv6 address or a DNS-1123 host
                              name, and a port from 1 to 65535
    identity                  null, or the SPIFFE ID of the service itself
    certificate               a few short scalars (what `minimesh status` shows)

Each check raises `InvalidRegistration` naming the field and the rule, which
the API turns into a 400.
"""

from __future__ import annotations

import ipaddress
import re

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
MAX_SUBDOMAIN = 253
MAX_LABELS = 64
MAX_CERT_FIELDS = 16


class InvalidRegistration(ValueError):
    """A /v1/register body the control plane cannot use (becomes a 400)."""


def dns1123_label(value: object, field: str) -> str:
    if not isinstance(value, str) or not DNS1123_LABEL.match(value):
        raise InvalidRegistration(f"register: {field} {show(value)} must be a DNS-1123 label (lower-case letters, "
                                  "digits and '-', starting and ending with a letter or digit, at most 63)")
    return value


def dns1123_subdomain(value: object, field: str) -> str:
    if (not isinstance(value, str) or not 0 < len(value) <= MAX_SUBDOMAIN
            or not all(DNS1123_LABEL.match(part) for part in value.split("."))):
        raise InvalidRegistration(f"register: {field} {show(value)} must be a DNS-1123 subdomain (labels of "
                                  "lower-case letters, digits and '-', joined by '.', at most 253)")
    return value


def labels(value: object, field: str = "labels") -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidRegistration(f"register: {field} must be an object of string values")
    if len(value) > MAX_LABELS:
        raise InvalidRegistration(f"register: {field} has {len(value)} entries; at most {MAX_LABELS}")
    for key, val in value.items():
        prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", None)
        if name is None or not LABEL_NAME.match(name) or (prefix and dns_name_error(prefix)):
            raise InvalidRegistration(f"register: {field} key {show(key)} must be [prefix/]name, the name "
                                      "alphanumeric with '-', '_' or '.', at most 63")
        if not isinstance(val, str) or (val and not LABEL_NAME.match(val)):
            raise InvalidRegistration(f"register: {field}.{key} {show(val)} must be a string of at most 63 "
                                      "alphanumerics, '-', '_' or '.'")
    return dict(value)


def dns_name_error(host: str) -> str | None:
    if len(host) > MAX_SUBDOMAIN or not all(DNS1123_LABEL.match(p) for p in host.split(".")):
        return "not an IP address or a DNS name"
    return None


def host_port(value: object, field: str) -> str:
    """'127.0.0.1:15006', '[::1]:15006' or 'catalog-0.local:15006'."""
    if not isinstance(value, str) or ":" not in value:
        raise InvalidRegistration(f"register: {field} {show(value)} must be host:port (e.g. 127.0.0.1:15006)")
    host, _, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        bad_host = None
    except ValueError:
        bad_host = dns_name_error(host) if host else "empty"
    if bad_host:
        raise InvalidRegistration(f"register: {field} {show(value)}: host {host!r} is {bad_host} "
                                  "(write host:port, e.g. 127.0.0.1:15006)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidRegistration(f"register: {field} {show(value)}: port must be a number from 1 to 65535")
    return value


def certificate_summary(value: object, field: str = "certificate") -> dict | None:
    """What a sidecar reports of its certificate (for `minimesh status`): a few short scalars."""
    if value is None:
        return None
    if (not isinstance(value, dict) or len(value) > MAX_CERT_FIELDS
            or not all(isinstance(k, str) and len(k) <= 32 for k in value)
            or not all(v is None or isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 256)
                       for v in value.values())):
        raise InvalidRegistration(f"register: {field} must be an object of at most {MAX_CERT_FIELDS} short "
                                  "scalar fields (spiffe_id, serial, not_before, not_after, ...)")
    return value


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
