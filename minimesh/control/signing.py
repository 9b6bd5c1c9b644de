"""Certificate signing at the control plane: a join token in, an X.509-SVID out.

`POST /v1/sign` carries a CSR and, in `Authorization: Bearer <token>`, the
sidecar's join token. The token is checked against the service the sidecar
claims (pki/tokens.py); only then does the CA look at the CSR (pki/ca.py).
A renewal needs no token: the sidecar calls with the certificate it holds,
and that certificate's service (`holder`) must be the one it asks for — the
join token is for a first certificate, as Kubernetes' bootstrap tokens are.
A missing or wrong token is a 403 and signs nothing; the attempt is logged
with who asked and for what — never with the token's value, which is a
credential (STYLE.md: "Never log keys or tokens").
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from minimesh.pki.ca import DEFAULT_LEAF_TTL, CertificateAuthority, Issued
from minimesh.pki.tokens import load_or_create_secret, token_is_valid

log = logging.getLogger("minimesh.pki")


class TokenRefused(PermissionError):
    """No valid join token for the service asked for (becomes a 403)."""


class Signer:
    def __init__(self, directory: Path, cert_ttl: float = DEFAULT_LEAF_TTL, clock=time.time):
        self.ca = CertificateAuthority.load_or_create(directory, cert_ttl)
        self.secret = load_or_create_secret(directory)
        self.clock = clock
        self.signed = 0
        self.refused = 0

    @property
    def trust_bundle(self) -> list[str]:
        return [self.ca.bundle_pem]

    def sign(self, service: str, instance: str, csr_pem: str, token: str | None, peer: str = "",
             holder: str | None = None) -> Issued:
        """Check the token (or the caller's certificate), then sign; raises TokenRefused or CSRRefused."""
        if holder != service and not token_is_valid(self.secret, service, token):
            self.refused += 1
            why = ("no join token" if not token else "a join token that is not valid for this service") + \
                (f" (its certificate is for {holder!r})" if holder else "")
            log.warning("refused to sign for service %r (instance %r, from %s): %s",
                        service, instance, peer or "?", why)
            raise TokenRefused(f"join token missing or not valid for service {service!r}; "
                               f"get one with `minimesh token {service or 'SERVICE'}`")
        issued = self.ca.sign(csr_pem, service, now=self.clock())
        self.signed += 1
        log.info("signed %s for instance %s: serial %s, valid %.0fs", issued.identity, instance,
                 issued.serial, self.ca.leaf_ttl)
        return issued
