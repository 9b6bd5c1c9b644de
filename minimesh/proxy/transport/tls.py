"""TLS for the data plane: contexts built from a workload's credentials, and peer identity.

Sidecars speak TLS 1.3 to each other, and both sides present a certificate
(mutual TLS). Each side verifies the other's chain against the mesh's trust
bundle — that proves "this peer holds a certificate from our CA". It does
not yet prove *which* workload the peer is; that is the SPIFFE ID in the
certificate's URI SAN:

- the server side reads the client's ID and records it on the connection,
  for telemetry and AuthorizationPolicy (`peer_identity`);
- the client side checks that the server's ID is the one of the service it
  meant to reach — Istio calls this *secure naming*. A certificate for
  `sa/evil` is perfectly valid, just not for `catalog`.

Hostname checking is off: SVIDs carry no DNS names, and the SPIFFE check
after the handshake replaces it. Contexts are built once per certificate
rotation (and per destination service on the client side), never per
request: `load_cert_chain` parses keys and is far slower than a handshake
that resumes nothing.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile

from minimesh.pki.credentials import Credentials
from minimesh.pki.spiffe import TRUST_DOMAIN, identity_of_peer, in_trust_domain, spiffe_id

log = logging.getLogger("minimesh.proxy")

TLS_HANDSHAKE = 0x16  # the first byte of every TLS connection: a handshake record (RFC 8446 §5.1)


class ResumingContext(ssl.SSLContext):
    """A client context that offers each upstream host the TLS session it last had there.

    TLS 1.3 resumption (RFC 8446 §2.2) skips the certificate exchange and
    signatures of a full handshake. The event loop builds every connection's
    TLS object through `wrap_bio`, which is where the remembered session
    goes in; the pool keeps it after a connection's first answer (a TLS 1.3
    ticket arrives after the handshake). A session the server no longer
    knows simply means a full handshake, never a failure.
    """

    sessions: dict

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):
        if session is None and not server_side:
            session = self.sessions.get(server_hostname)
        return super().wrap_bio(incoming, outgoing, server_side=server_side, server_hostname=server_hostname,
                                session=session)

    def remember(self, server_hostname: str, ssl_object) -> None:
        session = getattr(ssl_object, "session", None)
        if session is not None and session.has_ticket:
            self.sessions[server_hostname] = session


def _base(protocol: int, creds: Credentials, bundle_pem: str) -> ssl.SSLContext:
    if protocol == ssl.PROTOCOL_TLS_CLIENT:
        ctx = ResumingContext(protocol)
        ctx.sessions = {}
    else:
        ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # no DNS names in an SVID: the SPIFFE ID is checked instead
    ctx.verify_mode = ssl.CERT_REQUIRED  # both directions: this is *mutual* TLS
    ctx.load_verify_locations(cadata=bundle_pem)
    load_pem_chain(ctx, creds.cert_pem, creds.key_pem)
    return ctx


def load_pem_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Give `ctx` a certificate chain and its key, both PEM bytes held in memory."""
    # The ssl module loads keys from files only. A private directory, gone at once.
    with tempfile.TemporaryDirectory(prefix="minimesh-tls-") as d:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(cert, "wb") as f:
            f.write(cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert, key)


class TLSContexts:
    """Every TLS context one set of credentials needs: the server's, and a client's per destination."""

    def __init__(self, creds: Credentials, bundle_pem: str):
        self.creds = creds
        self.bundle_pem = bundle_pem
        self.server = _base(ssl.PROTOCOL_TLS_SERVER, creds, bundle_pem)
        self._clients: dict[str, ssl.SSLContext] = {}

    def client_for(self, service: str) -> ssl.SSLContext:
        return self.client_expecting(spiffe_id(service))

    def client_expecting(self, identity: str) -> ssl.SSLContext:
        """A client context that remembers whom it expects: the pool checks it per connection."""
        ctx = self._clients.get(identity)
        if ctx is None:
            ctx = _base(ssl.PROTOCOL_TLS_CLIENT, self.creds, self.bundle_pem)
            ctx.expected_peer = identity  # secure naming (pool.py checks it)
            self._clients[identity] = ctx
        return ctx


def peer_in_trust_domain(identity: str | None, transport=None) -> bool:
    """May a verified TLS peer proving `identity` talk to us? Only one of this mesh's trust domain.

    The chain already leads to our CA; the trust domain in the SPIFFE ID is
    checked too (SPIFFE's X.509-SVID standard has a relying party validate
    the ID, not only the chain), for a certificate issued before the CA
    refused foreign ones, or by a CA another mesh shares.
    """
    if in_trust_domain(identity):
        return True
    peer = transport.get_extra_info("peername") if transport is not None else None
    log.info("refused a TLS peer %s proving %s: not of trust domain %s", peer, identity or "no SPIFFE ID",
             TRUST_DOMAIN)
    return False


def peer_identity(ssl_object) -> str | None:
    """The SPIFFE ID the peer of a TLS connection proved, or None (no cert, or no SPIFFE ID)."""
    return identity_of_peer(ssl_object)
