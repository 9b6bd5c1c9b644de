"""Secret: a Kubernetes TLS Secret, the certificate a Gateway server presents.

A Gateway server with `tls.credentialName: shop-credential` presents the
certificate and key of the Secret of that name in the gateway's own
namespace (`istio-system`), as Istio's ingress gateway reads it over SDS.
minimesh takes the Secret exactly as `kubectl create secret tls NAME -n
istio-system --cert CERT --key KEY --dry-run=client -o yaml` prints it: core
`v1`, `type: kubernetes.io/tls` (or `Opaque`, from `kubectl create secret
generic --from-file=tls.crt=... --from-file=tls.key=... --from-file=ca.crt=...`,
as Istio's mutual TLS task makes it), `data` holding `tls.crt` and `tls.key` in
base64 — and `ca.crt`, the CA that client certificates must chain to when
the server's mode is MUTUAL (SIMPLE ignores it, as Istio does).

Checked at apply, so a bad Secret is one clear line and nothing changes:
the base64, the PEM, that the key is the certificate's, that the certificate
is valid now. The control plane delivers Secrets to the ingress gateway only,
never to sidecars, and shows a fingerprint (SHA-256 of the certificate)
wherever it shows a Secret (`minimesh get`, config_dump) — never the key.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .fields import At, check_fields, mapping, require, string
from .resource import Resource

# `cryptography` is imported in the functions that read a Secret: only the control plane and a gateway
# that is sent one load it; a sidecar's snapshots carry none, and a sidecar never maps it (~10 MB, issue 16).
if TYPE_CHECKING:
    from cryptography import x509

TLS_TYPE = "kubernetes.io/tls"
DOC_FIELDS = ("apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable")
KEYS = ("tls.crt", "tls.key", "ca.crt")
REDACTED = "<redacted: minimesh never shows a Secret's data>"


@dataclass(frozen=True, kw_only=True)
class Secret(Resource):
    kind = "Secret"
    cert_pem: bytes = b""  # the chain the gateway presents, leaf first
    key_pem: bytes = b""
    ca_pem: bytes = b""  # ca.crt: what a MUTUAL server verifies client certificates against ('' if none)
    fingerprint: str = ""  # SHA-256 of the leaf certificate, as `openssl x509 -fingerprint -sha256` prints it
    dns_names: tuple[str, ...] = ()
    not_after: str = ""


def parse_secret(doc: dict, at: At, **meta) -> Secret:
    """Validate a whole `v1 Secret` document (a Secret has no `spec`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    check_fields(doc, at, DOC_FIELDS)
    kind = string(doc.get("type", "Opaque"), at / "type")
    if kind not in (TLS_TYPE, "Opaque"):
        raise (at / "type").error(f"type {kind!r} is not used by minimesh: a Gateway's credentialName needs a "
                                  f"TLS Secret, type {TLS_TYPE} (kubectl create secret tls NAME --cert --key)")
    if "stringData" in doc:
        raise (at / "stringData").error("write the certificate and key under 'data', base64-encoded, as "
                                        "`kubectl create secret tls ... --dry-run=client -o yaml` prints them")
    data = mapping(require(doc, "data", at), at / "data")
    check_fields(data, at / "data", KEYS)
    cert_pem = _base64(require(data, "tls.crt", at / "data"), at / "data" / "tls.crt")
    key_pem = _base64(require(data, "tls.key", at / "data"), at / "data" / "tls.key")
    ca_pem = _base64(data["ca.crt"], at / "data" / "ca.crt") if "ca.crt" in data else b""
    if ca_pem:
        _certificates(ca_pem, at / "data" / "ca.crt")
    certs = _certificates(cert_pem, at / "data" / "tls.crt")
    key = _private_key(key_pem, at / "data" / "tls.key")
    leaf = certs[0]
    if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
        raise (at / "data" / "tls.key").error("this key is not the certificate's (tls.crt was made for another "
                                              "key); put the matching pair in the Secret")
    now = datetime.datetime.now(datetime.timezone.utc)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise (at / "data" / "tls.crt").error(
            f"the certificate is valid from {leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d},"
            " not now; make a new one")
    try:
        names = tuple(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                      .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    digest = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    fingerprint = "SHA256:" + ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    return Secret(cert_pem=cert_pem, key_pem=key_pem, ca_pem=ca_pem, fingerprint=fingerprint, dns_names=names,
                  not_after=f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}", **meta)


def redacted(manifest: dict) -> dict:
    """A Secret's manifest as minimesh shows it: its data replaced by what identifies it."""
    if manifest.get("kind") != "Secret" or manifest.get("apiVersion") != "v1":
        return manifest
    shown = copy.deepcopy({k: v for k, v in manifest.items() if k != "data"})
    data = manifest.get("data") or {}
    shown["data"] = {key: REDACTED for key in data}
    try:
        meta = manifest.get("metadata") or {}
        secret = parse_secret(manifest, At("<stored>"), name=meta.get("name", ""),
                              namespace=meta.get("namespace", "default"))
        shown["fingerprint"] = {"sha256": secret.fingerprint, "dnsNames": list(secret.dns_names),
                                "notAfter": secret.not_after}
    except Exception:  # noqa: BLE001 - a stored Secret was valid when applied; showing it must not fail
        pass
    return shown


def _base64(value: Any, at: At) -> bytes:
    text = string(value, at)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise at.error("is not base64; `kubectl create secret tls` encodes the PEM file for you "
                       "(or: base64 -w0 FILE)") from e


def _certificates(pem: bytes, at: At) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise at.error("is not a PEM certificate (-----BEGIN CERTIFICATE-----); pass the .crt file "
                       "openssl wrote") from e
    return certs


def _private_key(pem: bytes, at: At):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise at.error("is not an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----); make it with "
                       "openssl's -nodes (or -noenc)") from e
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise at.error("the key must be RSA, ECDSA or Ed25519")
    return key


def _public_bytes(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
