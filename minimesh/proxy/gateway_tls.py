"""TLS at the ingress gateway: which certificate a client gets on port 443, chosen by SNI.

A Gateway server on port 443 (`protocol: HTTPS`, `tls.mode: SIMPLE`) names
a TLS Secret by `credentialName`; the gateway reads it from its own
namespace, istio-system (config/secret.py), and terminates TLS with it.
Several servers may share the port, each with its own hosts and
certificate: Envoy gives each its own filter chain, matched on the SNI the
client sends in its ClientHello (RFC 6066 §3), and so does this module —
OpenSSL calls `choose` during the handshake, before any certificate is
sent, and `choose` switches the connection to the context of the server
whose hosts match the name (the most specific: a name over `*.example.com`
over `*`).

A server with `mode: MUTUAL` also asks the client for a certificate and
verifies it against the Secret's `ca.crt` (a client without one, or with
one another CA signed, is refused in the handshake).

When nothing matches — no server serves that name, or the one that does
names a Secret that is missing (or, for MUTUAL, has no ca.crt) — the
handshake fails, as on Istio, where
such a server's filter chain is left out of the listener. A plaintext
request to the port never gets an HTTP answer either: the connection is
closed. After the handshake the request is routed as on port 80, but only
through the server the SNI chose (ingress.py).

Contexts are built once per server and certificate, not per connection:
loading a key is far slower than a handshake.
"""

from __future__ import annotations

import logging
import ssl

from minimesh.config.gateway import HTTPS_PORT, Gateway, Server
from minimesh.config.resource import ROOT_NAMESPACE
from minimesh.config.secret import Secret
from minimesh.proxy.ingress import host_specificity
from minimesh.proxy.transport.sniffing import Action
from minimesh.proxy.transport.tls import load_pem_chain

log = logging.getLogger("minimesh.proxy")


def tls_servers(resources, labels: dict) -> list[tuple[Server, Secret | None]]:
    """Every port-443 server of the Gateways selecting this gateway, with its Secret (None: missing)."""
    secrets = {r.name: r for r in resources if isinstance(r, Secret) and r.namespace == ROOT_NAMESPACE}
    found = []
    for gateway in sorted((g for g in resources if isinstance(g, Gateway) and g.selector.selects(labels)),
                          key=lambda g: g.ref):
        for server in gateway.servers:
            if server.port == HTTPS_PORT and server.tls is not None and server.tls.credential_name:
                found.append((server, secrets.get(server.tls.credential_name)))
    return found


def choose_server(servers: list[tuple[Server, Secret | None]], sni: str | None) -> Server | None:
    """The server whose certificate a ClientHello naming `sni` gets, or None (the handshake fails)."""
    best, best_rank = None, None
    for server, secret in servers:
        if secret is None or (server.tls.mode == "MUTUAL" and not secret.ca_pem):
            continue  # Istio leaves this server out of the listener until its Secret (and CA) exists
        for allowed in server.hosts:
            if (sni is None and allowed.host != "*") or (sni is not None and not allowed.matches(sni.lower())):
                continue
            rank = host_specificity(allowed.host)
            if best_rank is None or rank > best_rank:
                best, best_rank = server, rank
    return best


class GatewayTLS:
    """The TLS port's policy for each new connection (sniffing.py asks it with the first byte)."""

    def __init__(self, holder, labels: dict):
        self.holder, self.labels = holder, labels
        self._servers: tuple[object, list] | None = None  # (config, tls_servers): once per snapshot
        self._contexts: dict[tuple, ssl.SSLContext] = {}  # (server, fingerprint, ca.crt) -> its context
        self.front = _server_context()  # holds no certificate: `choose` picks one
        self.front.sni_callback = self.choose

    def servers(self) -> list[tuple[Server, Secret | None]]:
        config = self.holder.current
        if self._servers is None or self._servers[0] is not config:
            self._servers = (config, tls_servers(config.resources, self.labels))
            for server, secret in self._servers[1]:
                if secret is None:
                    log.warning("gateway: Secret istio-system/%s is missing: hosts %s are not served on port %d",
                                server.tls.credential_name, ", ".join(h.host for h in server.hosts), HTTPS_PORT)
        return self._servers[1]

    def context_for(self, server: Server, secret: Secret) -> ssl.SSLContext:
        key = (server, secret.fingerprint, secret.ca_pem)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = _server_context()
            load_pem_chain(ctx, secret.cert_pem, secret.key_pem)
            if server.tls.mode == "MUTUAL":  # the client proves itself too, with a certificate from ca.crt's CA
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cadata=secret.ca_pem.decode("ascii"))
            ctx.gateway_server = server  # which server's routes apply on this connection (http_server.py)
            if len(self._contexts) > 64:  # renewed certificates: forget the old ones
                self._contexts.clear()
            self._contexts[key] = ctx
        return ctx

    def choose(self, ssl_object, sni: str | None, _front) -> int | None:
        """OpenSSL's SNI callback: switch to the chosen server's certificate, or fail the handshake."""
        servers = self.servers()
        server = choose_server(servers, sni)
        if server is None:
            log.info("gateway: TLS handshake for SNI %r refused: no server on port %d with a certificate serves it",
                     sni, HTTPS_PORT)
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        secret = next(s for srv, s in servers if srv is server)
        ssl_object.context = self.context_for(server, secret)
        return None

    @staticmethod
    def why_refused(is_tls: bool, mode: str, peer: str) -> str:
        """What the log says of a refused connection, after "refused " (sniffing.py)."""
        return f"a connection from {peer}: a plaintext request on the gateway's HTTPS port: only TLS is spoken there"

    def __call__(self, is_tls: bool) -> tuple[Action, ssl.SSLContext | None, str]:
        if not is_tls:
            return Action.REFUSE, None, "HTTPS only"
        # OpenSSL keeps a connection's verify mode when `choose` switches its context, so the front
        # context asks every client for a certificate while some server is MUTUAL; the certificate
        # is verified against the chosen server's CA, and `server_of` refuses a MUTUAL server's
        # client that sent none.
        mutual = any(server.tls.mode == "MUTUAL" for server, _ in self.servers())
        self.front.verify_mode = ssl.CERT_OPTIONAL if mutual else ssl.CERT_NONE
        return Action.MTLS, self.front, "SIMPLE"


def _server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # Istio's gateway default: TLS 1.2 and up
    return ctx


def server_of(ssl_object) -> Server | None:
    """The Gateway server whose certificate a terminated TLS connection got; None: refuse the connection."""
    server = getattr(ssl_object.context, "gateway_server", None)
    if server is not None and server.tls.mode == "MUTUAL" and ssl_object.getpeercert(binary_form=True) is None:
        log.info("gateway: refused a TLS client without a certificate: the server for %s is MUTUAL",
                 ", ".join(h.host for h in server.hosts))
        return None
    return server
