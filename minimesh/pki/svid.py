"""Reading an X.509-SVID with `cryptography`: its URI SANs, and the SPIFFE ID they prove.

For the CA, the control plane and the key maker (csr.py), which load
`cryptography` anyway. A sidecar reads its TLS peers' IDs from the ssl
module's decoded certificate instead (spiffe.identity_of_peer).
"""

from __future__ import annotations

from cryptography import x509

from minimesh.pki.spiffe import identity_of_uris


def uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def identity_of(cert: x509.Certificate) -> str | None:
    """The SPIFFE ID a certificate proves: its one spiffe:// URI SAN, else None (spiffe.identity_of_uris)."""
    return identity_of_uris(uri_sans(cert))


def identity_of_der(der: bytes | None) -> str | None:
    return identity_of(x509.load_der_x509_certificate(der)) if der else None
