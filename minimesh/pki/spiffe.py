"""SPIFFE identities: the names the mesh's certificates carry.

Every workload has one identity, written the way Istio writes it:

    spiffe://cluster.local/ns/<namespace>/sa/<service account>
             ^trust domain

A service's account is the service's own name, in its namespace; the
ingress gateway is Istio's `istio-system/istio-ingressgateway-service-account`.
Join tokens, signing and registration name an identity by its *account
key*: the account alone in namespace `default` (`web`, as the lessons have
always shown it), `NAMESPACE/ACCOUNT` anywhere else (`foo/catalog`).

AuthorizationPolicy names peers by *principal*, which is the same string
without the scheme ("cluster.local/ns/default/sa/web").
"""

from __future__ import annotations

import re

TRUST_DOMAIN = "cluster.local"
NAMESPACE = "default"
PREFIX = f"spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/"
_SPIFFE = re.compile(rf"^spiffe://{re.escape(TRUST_DOMAIN)}/ns/([^/]+)/sa/([^/]+)$")

# Istio's default ingress gateway runs as this account (lesson 06's policies name it).
GATEWAY_ACCOUNT = "istio-system/istio-ingressgateway-service-account"


def account_key(namespace: str, account: str) -> str:
    """'default', 'web' -> 'web'; 'foo', 'catalog' -> 'foo/catalog'."""
    return account if namespace == NAMESPACE else f"{namespace}/{account}"


def reporter_of(account: str) -> str:
    """The name a workload of this account reports telemetry as ('gateway' for the gateway).

    Its service's name in `default` ('web', as the lessons have always shown
    it), 'NAME.NAMESPACE' anywhere else ('catalog.foo', the name that reaches
    it from any pod), so two namespaces' catalogs never share a row.
    """
    if account == GATEWAY_ACCOUNT:
        return "gateway"
    namespace, _, name = account.rpartition("/")
    return f"{name}.{namespace}" if namespace else name


def spiffe_id(account: str) -> str:
    """The SPIFFE ID of an account key ('web' or 'foo/catalog')."""
    namespace, _, name = account.rpartition("/")
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace or NAMESPACE}/sa/{name}"


def service_of(identity: str | None) -> str | None:
    """The account key a SPIFFE ID of this mesh names ('web', 'foo/catalog'), or None if it names none."""
    found = _SPIFFE.match(identity) if identity else None
    return account_key(found.group(1), found.group(2)) if found else None


def trust_domain_of(identity: str | None) -> str | None:
    """"cluster.local" for spiffe://cluster.local/...; None for anything that is not a SPIFFE ID."""
    if not identity or not identity.startswith("spiffe://"):
        return None
    return identity[len("spiffe://"):].split("/", 1)[0] or None


def in_trust_domain(identity: str | None) -> bool:
    """True for a SPIFFE ID of this mesh's trust domain (sidecars refuse peers of any other)."""
    return trust_domain_of(identity) == TRUST_DOMAIN


def principal(identity: str | None) -> str | None:
    """The principal AuthorizationPolicy matches: the SPIFFE ID without "spiffe://"."""
    return identity.removeprefix("spiffe://") if identity else None


def identity_of_uris(uris: list[str]) -> str | None:
    """The SPIFFE ID a certificate with these URI SANs proves: its one spiffe:// URI SAN, else None.

    X.509-SVID §2: "An X.509 SVID MUST contain exactly one URI SAN". A
    certificate with two, or with a non-SPIFFE one, proves no identity here.
    """
    if len(uris) != 1 or not uris[0].startswith("spiffe://"):
        return None
    return uris[0]


def identity_of_peer(ssl_object) -> str | None:
    """The SPIFFE ID the verified peer of a TLS connection proved, or None (no certificate, no SPIFFE ID).

    Read from the certificate as the ssl module decodes it once the chain is
    verified (`getpeercert()`: its subjectAltName entries), so a sidecar
    needs no X.509 parser of its own (svid.py reads certificates with
    `cryptography`, where one is loaded anyway: the CA, the control plane).
    """
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    return identity_of_uris([value for kind, value in (cert or {}).get("subjectAltName", ()) if kind == "URI"])


def serial_hex(number: int) -> str:
    """A certificate serial as `openssl x509 -serial` shows it: the hex of its DER bytes, leading zeros kept.

    (Python's `format(n, "x")` drops them, so a serial starting 07… read 7… and
    matched nothing a learner saw in openssl.)
    """
    return format(number, f"0{2 * (number.bit_length() // 8 + 1)}x")
