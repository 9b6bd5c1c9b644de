"""The mesh CA: the X.509-SVID rules it writes into every leaf, and the CSRs it refuses."""

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from minimesh.pki.ca import CertificateAuthority, CSRRefused
from minimesh.pki.spiffe import service_of, spiffe_id
from minimesh.pki.svid import identity_of
from minimesh.pki.workload import build_csr, credentials, new_key


@pytest.fixture(scope="module")
def ca():
    return CertificateAuthority.create(now=1_000_000.0, leaf_ttl=24 * 3600)


@pytest.fixture(scope="module")
def leaf(ca):
    return ca.sign(build_csr(new_key(), spiffe_id("web")), "web", now=1_000_100.0).certificate


def test_a_leaf_is_an_x509_svid(leaf):
    # SPIFFE X.509-SVID §2: exactly one URI SAN, the SPIFFE ID.
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://cluster.local/ns/default/sa/web"]
    assert san.critical  # the subject is empty (RFC 5280 §4.2.1.6)
    assert len(list(san.value)) == 1
    # §4.1 not a CA; §4.3 digitalSignature, critical, no keyCertSign; §4.4 serverAuth + clientAuth.
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign and not ku.value.crl_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) and leaf.public_key().curve.name == "secp256r1"


def test_the_leaf_lives_the_configured_ttl_and_chains_to_the_root(ca, leaf):
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() == 24 * 3600
    leaf.verify_directly_issued_by(ca.cert)
    root = ca.cert
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert identity_of(root) == "spiffe://cluster.local"  # a signing cert's ID has no path


@pytest.mark.parametrize("service,identity,expected", [
    ("web", spiffe_id("web"), None),
    ("web", None, "names no SPIFFE ID"),  # X.509-SVID §2: exactly one URI SAN, so none is refused
    ("web", spiffe_id("payments"), "join token is for"),
    ("web", "spiffe://evil.example/ns/default/sa/web", "trust domain 'evil.example'"),
    ("web", "https://cluster.local/ns/default/sa/web", "not a SPIFFE ID"),
])
def test_the_identity_comes_from_the_token_never_from_the_csr(ca, service, identity, expected):
    key = new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if identity:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
                                        critical=True)
    csr = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    if expected:
        with pytest.raises(CSRRefused, match=expected):
            ca.sign(csr, service)
    else:
        assert identity_of(ca.sign(csr, service).certificate) == spiffe_id(service)


@pytest.mark.parametrize("make,why", [
    (lambda: x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        rsa.generate_private_key(65537, 2048), hashes.SHA256()).public_bytes(serialization.Encoding.PEM), "P-256"),
    (lambda: x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        ec.generate_private_key(ec.SECP384R1()), hashes.SHA256()).public_bytes(serialization.Encoding.PEM), "P-256"),
    (lambda: b"not a csr", "PEM"),
])
def test_unusable_csrs_are_refused(ca, make, why):
    with pytest.raises(CSRRefused, match=why):
        ca.sign(make(), "web")


def test_a_tampered_csr_is_refused(ca):
    pem = build_csr(new_key(), spiffe_id("web"))
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # flip bits in the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CSRRefused, match="signature"):
        ca.sign(tampered, "web")


def test_the_ca_is_created_once_with_a_private_key_file(tmp_path):
    first = CertificateAuthority.load_or_create(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / "ca-key.pem").st_mode)
    assert mode == 0o600
    again = CertificateAuthority.load_or_create(tmp_path)
    assert again.cert.serial_number == first.cert.serial_number


def test_credentials_know_their_half_life(ca):
    key = new_key()
    issued = ca.sign(build_csr(key, spiffe_id("web")), "web", now=2_000_000.0, ttl=20)
    creds = credentials(key, issued.pem, ca.bundle_pem)
    assert creds.identity == spiffe_id("web") and creds.serial == issued.serial
    assert creds.renew_at == 2_000_010.0
    with pytest.raises(ValueError, match="not for our key"):
        credentials(new_key(), issued.pem, ca.bundle_pem)


@pytest.mark.parametrize("identity,service", [
    ("spiffe://cluster.local/ns/default/sa/web", "web"),
    ("spiffe://cluster.local/ns/default/sa/web/x", None),
    ("spiffe://other.domain/ns/default/sa/web", None),
    ("spiffe://cluster.local/ns/default/sa/", None),
    (None, None),
])
def test_service_of_a_spiffe_id(identity, service):
    assert service_of(identity) == service
