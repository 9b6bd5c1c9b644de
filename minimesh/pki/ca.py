"""The mesh's certificate authority: one root key, and the X.509-SVIDs it signs.

Theory of operation. The first time the control plane starts it creates a
root CA — an ECDSA P-256 key and a self-signed certificate — and keeps them
in `<home>/control/` (the key readable by its owner only, mode 0600). Every
later start loads the same pair, so certificates issued before a restart
still verify after it. The root certificate is the *trust bundle*: it
travels to every sidecar in the snapshot, and a sidecar trusts a peer only
if the peer's certificate chains up to it.

A sidecar never sends its private key anywhere. It makes a key of its own,
wraps the public half in a certificate signing request (CSR) and sends that,
together with its join token (tokens.py). The CA takes from the CSR only the
public key — and a proof, the CSR's signature, that the sender holds the
matching private key. Everything else in the certificate is the CA's
decision: the identity comes from the *token*, never from what the CSR asks
for; a CSR asking for another service's identity is refused outright.

What the CA writes into a leaf follows the SPIFFE X.509-SVID standard
(github.com/spiffe/spiffe, standards/X509-SVID.md), which Istio follows too:

  §2   "An X.509 SVID MUST contain exactly one URI SAN, and by extension,
        exactly one SPIFFE ID."
  §4.1 "Leaf certificates MUST set the cA field to false"  (BasicConstraints)
  §4.3 "Leaf SVIDs MUST set digitalSignature. They MAY set keyEncipherment
        and/or keyAgreement ... MUST NOT set keyCertSign or cRLSign."
       "This extension MUST be marked as critical."  (KeyUsage)
  §4.4 "When included, fields id-kp-serverAuth and id-kp-clientAuth MUST
        be set."  (ExtendedKeyUsage: one certificate is both a server's and
        a client's, which is what mutual TLS between sidecars needs)
  §4.1 of the signing certificate: "MUST set the cA field to true" and
        §4.3 "MUST set keyCertSign"; §3 its SPIFFE ID "MUST NOT have a path
        component" — so the root carries spiffe://cluster.local.

The leaf has an empty subject: the identity lives in the SAN alone. RFC 5280
§4.2.1.6 then requires the SAN extension to be critical, and it is.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from minimesh.errors import UserError
from minimesh.pki.spiffe import TRUST_DOMAIN, serial_hex, spiffe_id, trust_domain_of
from minimesh.pki.svid import uri_sans

log = logging.getLogger("minimesh.pki")

DEFAULT_LEAF_TTL = 24 * 3600.0
ROOT_TTL = 10 * 365 * 24 * 3600.0
KEY_FILE, CERT_FILE = "ca-key.pem", "ca-cert.pem"


class CSRRefused(ValueError):
    """A CSR the CA will not sign (becomes a 400 at the API)."""


def write_private(path: Path, data: bytes) -> None:
    """Create `path` readable by its owner only; the mode is set at creation, never widened."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc)


@dataclass(frozen=True)
class Issued:
    """What the CA hands back for one CSR."""

    certificate: x509.Certificate
    identity: str

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def serial(self) -> str:
        return serial_hex(self.certificate.serial_number)


class CertificateAuthority:
    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, leaf_ttl: float = DEFAULT_LEAF_TTL):
        self.key, self.cert, self.leaf_ttl = key, cert, leaf_ttl

    @property
    def bundle_pem(self) -> str:
        """The trust bundle: the root certificate every sidecar verifies peers against."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @classmethod
    def create(cls, now: float | None = None, leaf_ttl: float = DEFAULT_LEAF_TTL) -> "CertificateAuthority":
        now = time.time() if now is None else now
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, TRUST_DOMAIN),
                          x509.NameAttribute(NameOID.COMMON_NAME, "minimesh root CA")])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(_utc(now)).not_valid_after(_utc(now + ROOT_TTL))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://{TRUST_DOMAIN}")]), critical=False)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        return cls(key, cert, leaf_ttl)

    @classmethod
    def load_or_create(cls, directory: Path, leaf_ttl: float = DEFAULT_LEAF_TTL) -> "CertificateAuthority":
        """The CA kept in `directory`, created (key mode 0600) on first use."""
        directory = Path(directory)
        key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
        if key_path.exists() and cert_path.exists():
            try:
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            except ValueError as e:
                raise UserError(f"{directory}: the mesh CA cannot be loaded ({e}); remove {KEY_FILE} and "
                                f"{CERT_FILE} to make a new one (every sidecar then needs a restart)") from e
            log.debug("loaded mesh CA from %s (root serial %x)", directory, cert.serial_number)
            return cls(key, cert, leaf_ttl)
        if key_path.exists() or cert_path.exists():
            raise UserError(f"{directory}: only one of {KEY_FILE} and {CERT_FILE} exists; "
                            "restore the other or remove both to make a new CA")
        ca = cls.create(leaf_ttl=leaf_ttl)
        write_private(key_path, ca.key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
        cert_path.write_text(ca.bundle_pem)
        log.debug("created mesh CA in %s (root serial %x, key mode 0600)", directory, ca.cert.serial_number)
        return ca

    def sign(self, csr_pem: bytes | str, service: str, now: float | None = None,
             ttl: float | None = None) -> Issued:
        """Sign an X.509-SVID for `service` over the CSR's public key, or raise CSRRefused."""
        csr = _load_csr(csr_pem)
        identity = spiffe_id(service)
        check_csr_names(csr, identity)
        return self.issue(csr.public_key(), identity, now=now, ttl=ttl)

    def issue(self, public_key, identity: str, *, now: float | None = None, ttl: float | None = None,
              dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> Issued:
        """A leaf for `identity` over `public_key`. Only the CA's own callers (the control
        plane's server certificate, the operator's client certificates) add DNS names or IPs;
        a workload's CSR never does (check_csr_names)."""
        now = time.time() if now is None else now
        ttl = self.leaf_ttl if ttl is None else ttl
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity)]
        names += [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([])).issuer_name(self.cert.subject)
                .public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(_utc(now)).not_valid_after(_utc(now + ttl))
                .add_extension(x509.SubjectAlternativeName(names), critical=True)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                             content_commitment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=False, crl_sign=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                               critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                .sign(self.key, hashes.SHA256()))
        return Issued(cert, identity)


def check_csr_names(csr: x509.CertificateSigningRequest, identity: str) -> None:
    """X.509-SVID §2: exactly one URI SAN, a SPIFFE ID — here, the one the token vouches for.

    A CSR that names no SPIFFE ID, one in another trust domain, another
    service's, or anything besides (a DNS name, an IP, a second URI) is
    refused, not trimmed: what a workload asks for is either exactly what it
    may have, or a sign that something is wrong.
    """
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CSRRefused(f"the CSR names no SPIFFE ID; it must carry exactly one URI SAN, {identity}") from None
    names = list(san)
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(names) != 1 or len(uris) != 1:
        raise CSRRefused(f"the CSR asks for {len(names)} subject alternative names; an X.509-SVID carries "
                         f"exactly one, the URI SAN {identity}")
    asked = uris[0]
    if not asked.startswith("spiffe://"):
        raise CSRRefused(f"the CSR asks for {asked}, which is not a SPIFFE ID")
    if trust_domain_of(asked) != TRUST_DOMAIN:
        raise CSRRefused(f"the CSR asks for {asked}, in trust domain {trust_domain_of(asked)!r}; "
                         f"this CA signs only for {TRUST_DOMAIN!r}")
    if asked != identity:
        # The token says which service this is; a CSR that asks for more is refused, not trimmed.
        raise CSRRefused(f"the CSR asks for {asked}, but the join token is for {identity}")


def _load_csr(csr_pem: bytes | str) -> x509.CertificateSigningRequest:
    data = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise CSRRefused(f"not a PEM certificate signing request: {e}") from e
    try:
        valid = csr.is_signature_valid
    except (InvalidSignature, ValueError):
        valid = False
    if not valid:
        raise CSRRefused("the CSR's signature does not verify: the sender does not hold its key")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CSRRefused("the CSR's key must be ECDSA P-256")
    return csr
