"""The workload's side of identity: its own key, its CSR, and the credentials it holds.

A sidecar makes a fresh ECDSA P-256 key for every certificate it asks for,
so a key never outlives the certificate that vouches for it and never leaves
the sidecar (it crosses one pipe, from the key maker to the proxy: csr.py). The CSR names the SPIFFE ID the sidecar expects (the CA checks
it against the join token). What comes back, with the key, is a
`Credentials`: the PEM texts TLS needs, and the facts about the certificate
that rotation and `minimesh status` need (serial, validity).

A sidecar does not run these in its own process: it runs this module as a
program, `python -m minimesh.pki.workload`, for each certificate (the key
maker: csr.py), so the long-lived proxy never loads `cryptography`. `Credentials` (credentials.py) is what it keeps.

Rotation happens at half-life, as in Istio: with a 24 h certificate, after
12 h; with a 20 s one, after 10 s. Half-life leaves the other half for
retries should the control plane be away when renewal is due.
"""

from __future__ import annotations

import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from minimesh.pki.credentials import Credentials
from minimesh.pki.spiffe import serial_hex
from minimesh.pki.svid import identity_of


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def build_csr(key: ec.EllipticCurvePrivateKey, identity: str) -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=True)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def credentials(key: ec.EllipticCurvePrivateKey, cert_pem: str, bundle_pem: str) -> Credentials:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError("the signed certificate is not for our key")
    identity = identity_of(cert)
    if identity is None:
        raise ValueError("the signed certificate carries no SPIFFE ID")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return Credentials(key_pem=key_pem, cert_pem=cert_pem.encode(), bundle_pem=bundle_pem, identity=identity,
                       serial=serial_hex(cert.serial_number),
                       not_before=cert.not_valid_before_utc.timestamp(),
                       not_after=cert.not_valid_after_utc.timestamp())


def key_maker(identity: str) -> None:
    """Run as `python -m minimesh.pki.workload SPIFFE-ID`: the key maker a sidecar starts (csr.py)."""
    key = new_key()
    print(json.dumps({"csr": build_csr(key, identity)}), flush=True)
    line = sys.stdin.readline()
    if not line:
        return  # the sidecar gave up on this certificate (stopped, or the control plane never answered)
    signed = json.loads(line)
    try:
        creds = credentials(key, signed["certificate"], signed["trust_bundle"])
    except ValueError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return
    print(json.dumps({"key_pem": creds.key_pem.decode(), "cert_pem": creds.cert_pem.decode(),
                      "bundle_pem": creds.bundle_pem, "identity": creds.identity, "serial": creds.serial,
                      "not_before": creds.not_before, "not_after": creds.not_after}), flush=True)


if __name__ == "__main__":
    key_maker(sys.argv[1])
