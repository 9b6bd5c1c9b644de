"""Certificate serials keep their leading zeros, as openssl shows them (issue 18, defect 17)."""

import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from minimesh.pki.ca import CertificateAuthority
from minimesh.pki.spiffe import serial_hex


@pytest.mark.parametrize("number, shown", [
    (0x07844F73F19CD4E05605ABC4774BA4DF9DCA69FB, "07844f73f19cd4e05605abc4774ba4df9dca69fb"),
    (0x0A, "0a"),
    (0x7F, "7f"),
    (0x80, "0080"),  # DER adds a sign byte when the top bit is set
])
def test_serial_hex(number, shown):
    assert serial_hex(number) == shown


def test_a_leaf_serial_reads_as_openssl_reads_it(tmp_path):
    ca = CertificateAuthority.load_or_create(tmp_path)
    cert_file = tmp_path / "root.pem"
    cert_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    try:
        out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(cert_file)],
                             capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        pytest.skip("no openssl here")
    assert out.strip().lower() == "serial=" + serial_hex(ca.cert.serial_number)
