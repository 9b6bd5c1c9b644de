"""The operator's credentials: who may talk to the control plane, and how to find them.

Every caller of the control plane's API presents a certificate from the mesh
CA, as every caller of a Kubernetes API server does:

    a sidecar   its X.509-SVID, spiffe://cluster.local/ns/default/sa/<service>
    the CLI     the admin certificate, .../ns/minimesh-system/sa/admin
    the TUI     the admin's, or in compose mode a read-only viewer certificate

The admin and viewer certificates are made together with the CA (by the
runner, or the control plane on its first start) and kept in
`<MINIMESH_HOME>/credentials/`, the private parts readable by their owner only
(mode 0600) — a kubeconfig's client certificate, in effect:

    ca.pem       the mesh's root certificate: what a client verifies the server against
    admin.pem    key + certificate of the admin (apply, delete, faults, tokens, stop/start)
    viewer.pem   key + certificate of a viewer (reads only: status, config, telemetry)

So `minimesh apply` needs no new step: it finds `admin.pem` from
MINIMESH_HOME, as kubectl finds ~/.kube/config. In compose mode the control
plane container writes the same three files into a directory the host
mounts (`${MINIMESH_HOME:-.minimesh}/credentials`).

The control plane's own server certificate (`server_credentials`) is issued
at each start, with the names clients dial: 127.0.0.1, localhost, control.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from minimesh.pki.ca import CertificateAuthority, write_private
from minimesh.pki.control_tls import CA_FILE, client_context, credentials_dir, load_chain
from minimesh.pki.spiffe import TRUST_DOMAIN
from minimesh.pki.workload import new_key

log = logging.getLogger("minimesh.pki")

SYSTEM_NAMESPACE = "minimesh-system"  # Istio's istiod lives in istio-system; our control plane here
ADMIN = f"spiffe://{TRUST_DOMAIN}/ns/{SYSTEM_NAMESPACE}/sa/admin"
VIEWER = f"spiffe://{TRUST_DOMAIN}/ns/{SYSTEM_NAMESPACE}/sa/viewer"
CONTROL = f"spiffe://{TRUST_DOMAIN}/ns/{SYSTEM_NAMESPACE}/sa/control"
ROLES = {"admin": ADMIN, "viewer": VIEWER}
OPERATOR_TTL = 365 * 24 * 3600.0
SERVER_NAMES = ("localhost", "control")
SERVER_IPS = ("127.0.0.1",)


def _pem(issued_cert: x509.Certificate, key) -> bytes:
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
            + issued_cert.public_bytes(serialization.Encoding.PEM))


def _issued_by(path: Path, ca: CertificateAuthority) -> bool:
    """True if `path` holds a certificate this CA signed (else it is stale: another CA's)."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(ca.cert)
        return True
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False


def write_operator_credentials(ca: CertificateAuthority, directory: Path) -> Path:
    """ca.pem, admin.pem and viewer.pem for `ca` in `directory` (made when missing or stale)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_path = directory / CA_FILE
    if not ca_path.is_file() or ca_path.read_text() != ca.bundle_pem:
        tmp = ca_path.with_suffix(".tmp")
        tmp.write_text(ca.bundle_pem)
        tmp.replace(ca_path)
    for role, identity in ROLES.items():
        path = directory / f"{role}.pem"
        if path.is_file() and _issued_by(path, ca):
            continue
        key = new_key()
        issued = ca.issue(key.public_key(), identity, ttl=OPERATOR_TTL)
        path.unlink(missing_ok=True)
        write_private(path, _pem(issued.certificate, key))
        log.debug("wrote the %s client certificate to %s (mode 0600)", role, path)
    return directory


def ensure_operator_credentials(home: str | os.PathLike) -> CertificateAuthority:
    """The mesh CA in `<home>/control` (made on first use) and the operator's credentials beside it."""
    home = Path(home)
    ca = CertificateAuthority.load_or_create(home / "control")
    write_operator_credentials(ca, credentials_dir(home))
    return ca


@dataclass(frozen=True)
class ServerCredentials:
    key_pem: bytes
    cert_pem: bytes
    bundle_pem: str


def server_credentials(ca: CertificateAuthority, extra_names: tuple[str, ...] = ()) -> ServerCredentials:
    """A fresh certificate for the control plane (or the runner's supervisor API) to serve with."""
    key = new_key()
    names = tuple(dict.fromkeys((*SERVER_NAMES, *(n for n in extra_names if n and not _is_ip(n)))))
    ips = tuple(dict.fromkeys((*SERVER_IPS, *(n for n in extra_names if _is_ip(n)))))
    issued = ca.issue(key.public_key(), CONTROL, ttl=OPERATOR_TTL, dns_names=names, ips=ips)
    pem = _pem(issued.certificate, key)
    return ServerCredentials(pem, issued.certificate.public_bytes(serialization.Encoding.PEM), ca.bundle_pem)


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def server_context(creds: ServerCredentials) -> ssl.SSLContext:
    """The control plane's TLS: our certificate; a client certificate is asked for and verified.

    CERT_OPTIONAL, not REQUIRED: a sidecar asking for its *first* certificate
    has none yet and proves itself with a join token instead — at /v1/sign
    only. Every other route refuses a caller without one (control/access.py).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cadata=creds.bundle_pem)
    load_chain(ctx, creds.key_pem)
    return ctx


class NoCredentials(LookupError):
    """No operator credentials where they were looked for."""


def ca_bundle(home: str | os.PathLike) -> str:
    """The mesh CA's certificate from `<home>/credentials/ca.pem` (home: the stack's MINIMESH_HOME)."""
    path = credentials_dir(Path(home).expanduser().resolve()) / CA_FILE
    try:
        return path.read_text()
    except FileNotFoundError as e:
        raise NoCredentials(f"no mesh CA certificate at {path}; it is made when a stack starts there") from e


def operator_context(role: str, home: str | os.PathLike) -> ssl.SSLContext:
    """The admin's (or viewer's) client context, from `<home>/credentials` (home: the stack's MINIMESH_HOME)."""
    directory = credentials_dir(Path(home).expanduser().resolve())
    ca_path, chain_path = directory / CA_FILE, directory / f"{role}.pem"
    if role == "admin" and not chain_path.is_file() and (directory / "viewer.pem").is_file():
        chain_path = directory / "viewer.pem"  # a viewer's home: reads work, changes get a clear 403
    try:
        return client_context(ca_path.read_text(), chain_path.read_bytes())
    except FileNotFoundError as e:
        raise NoCredentials(f"no {role} credentials in {directory} ({Path(e.filename).name} is missing); "
                            "they are made when a stack starts there — set MINIMESH_HOME to the stack's home") from e
