"""What a workload holds once its certificate is signed: key, certificate, trust bundle, and their facts.

Plain data, no `cryptography`: the sidecar keeps these, and builds its TLS
contexts from the PEM texts (proxy/transport/tls.py); the facts (serial,
validity) were read from the certificate where it was checked (workload.py,
in the key maker's process: csr.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    """A leaf certificate with its private key, and the trust bundle it came with."""

    key_pem: bytes
    cert_pem: bytes
    bundle_pem: str
    identity: str
    serial: str  # hex, as openssl prints it
    not_before: float  # unix seconds
    not_after: float

    @property
    def renew_at(self) -> float:
        return self.not_before + (self.not_after - self.not_before) / 2

    def summary(self, now: float) -> dict:
        return {"spiffe_id": self.identity, "serial": self.serial, "not_before": self.not_before,
                "not_after": self.not_after, "expires_in_s": round(self.not_after - now, 1)}
