"""Secure naming: which identity an upstream must prove, and when plaintext is not allowed.

Istio's promise: "a workload can only be reached as, and only reach as, the
identity its certificate proves". On the client side that takes two rules,
decided here per attempt, from data only (the endpoint the balancer picked,
as the snapshot describes it, and whether we hold a certificate):

1. An endpoint carries the identity the control plane verified when it
   registered (the registering sidecar's certificate, never its say-so).
   The client connects with mutual TLS and then checks that the server's
   certificate proves *exactly that* identity (pool.py) — a valid mesh
   certificate for `sa/evil` does not make a catalog endpoint.
2. An endpoint with no identity cannot prove anything. If its workload's
   PeerAuthentication wants mTLS (STRICT), sending it plaintext would hand
   an unverified listener the request — Authorization and Cookie headers
   included — so the attempt fails instead: 503 UF, with the reason.
   Under PERMISSIVE or DISABLE, plaintext to an identity-less endpoint stays
   possible, as on Istio, and telemetry labels the request plaintext.

    endpoint identity   its mode              we hold a cert   decision
    yes                 STRICT or PERMISSIVE  yes              mTLS, expect that identity
    yes                 DISABLE               -                plaintext
    yes                 STRICT                no               refuse: we cannot prove ourselves
    no                  STRICT                -                refuse: nothing to verify
    no                  PERMISSIVE, DISABLE   -                plaintext
    yes                 PERMISSIVE            no               plaintext
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from minimesh.pki.spiffe import in_trust_domain


class Transport(Enum):
    MTLS = "mtls"
    PLAINTEXT = "plaintext"
    REFUSE = "refuse"


@dataclass(frozen=True)
class UpstreamSecurity:
    transport: Transport
    expected_identity: str | None = None  # for MTLS: what the server's certificate must prove
    reason: str = ""  # for REFUSE: why, for x-minimesh-error
    unverified: bool = False  # PLAINTEXT to an endpoint without an identity: telemetry says so

    @property
    def label(self) -> str:
        """How telemetry and the tap describe the attempt's transport."""
        if self.transport is Transport.MTLS:
            return f"mutual_tls {self.expected_identity}"
        if self.transport is Transport.REFUSE:
            return "refused (secure naming)"
        return "plaintext (no verified identity)" if self.unverified else "plaintext"


def upstream_security(mode: str, identity: str | None, have_certificate: bool,
                      endpoint: str = "the endpoint") -> UpstreamSecurity:
    """How to connect to an endpoint whose workload runs PeerAuthentication `mode`."""
    if mode == "DISABLE":
        return UpstreamSecurity(Transport.PLAINTEXT)
    if identity is not None and not in_trust_domain(identity):
        return UpstreamSecurity(Transport.REFUSE, reason=f"{endpoint} claims {identity}, outside this mesh's "
                                                         "trust domain")
    if identity is None:
        if mode == "STRICT":
            return UpstreamSecurity(Transport.REFUSE, reason=f"{endpoint} has no verified identity and its "
                                                             "destination requires mTLS (STRICT); not sending "
                                                             "plaintext")
        return UpstreamSecurity(Transport.PLAINTEXT, unverified=True)
    if not have_certificate:
        if mode == "STRICT":
            return UpstreamSecurity(Transport.REFUSE, reason=f"{endpoint} requires mTLS (STRICT) and this "
                                                             "sidecar holds no certificate yet")
        return UpstreamSecurity(Transport.PLAINTEXT)
    return UpstreamSecurity(Transport.MTLS, expected_identity=identity)
