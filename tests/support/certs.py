"""A learner's own certificate for the ingress gateway, as the openssl commands of lesson 08 make one.

    ca, cert, key = learner_certificate(["shop.example.com"])   # PEM bytes: a CA, a leaf it signed, its key
    tls_secret("shop-credential", cert, key)                    # the v1 Secret `kubectl create secret tls` prints
    client_context(ca)                                          # a Python ssl client trusting only that CA
"""

from __future__ import annotations

import base64
import datetime
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "example Inc."),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def learner_certificate(hosts: list[str], days: int = 30, ca_name: str = "example.com",
                        not_before: datetime.datetime | None = None) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, leaf certificate for `hosts`, the leaf's key), all PEM."""
    now = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(ca_name)).issuer_name(_name(ca_name))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (ca.public_bytes(serialization.Encoding.PEM), leaf.public_bytes(serialization.Encoding.PEM),
            _pem_key(key))


def tls_secret(name: str, cert_pem: bytes, key_pem: bytes, namespace: str = "istio-system") -> dict:
    """The Secret `kubectl create secret tls NAME -n NAMESPACE --cert --key --dry-run=client -o yaml` prints."""
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"creationTimestamp": None, "name": name, "namespace": namespace},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(cert_pem).decode(), "tls.key": base64.b64encode(key_pem).decode()}}


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """What `curl --cacert ca.crt` does: verify the gateway's certificate and its name against this CA only."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    return ctx
