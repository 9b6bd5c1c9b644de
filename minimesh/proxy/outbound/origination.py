"""TLS origination: a DestinationRule's `tls` turned into the context a connection opens with.

The app speaks plain HTTP to its sidecar (`http://api.example.com/`); with
`tls: {mode: SIMPLE}` on the destination the sidecar opens HTTPS to it — the
way Istio's egress TLS origination task keeps apps simple and lets the mesh
see (route, retry, count) what it would otherwise only tunnel.

    DISABLE       None: plaintext, whatever auto mTLS would have done
    SIMPLE        verify the server: its chain against caCertificates (or the
                  system's roots), its name against the SNI we send (sni, else
                  the host the app asked for) or against subjectAltNames
    MUTUAL        SIMPLE, presenting clientCertificate/privateKey
    ISTIO_MUTUAL  the sidecar's own mesh certificate; the server must prove
                  the rule's subjectAltNames[0], else the identity the
                  endpoint registered with (secure naming), else only a
                  chain to the mesh's CA

Contexts are built once per (settings, server name) and kept: loading
certificates is far slower than a handshake. A file that cannot be read, or
no mesh certificate for ISTIO_MUTUAL, fails the attempt with 503 UF and the
reason — never plaintext instead.
"""

from __future__ import annotations

import ssl

from minimesh.config.clienttls import ClientTLS
from minimesh.errors import UpstreamConnectFailure


class Originate:
    def __init__(self):
        self._contexts: dict[tuple[ClientTLS, str], ssl.SSLContext] = {}

    def __call__(self, settings: ClientTLS, host: str, endpoint, contexts) -> ssl.SSLContext | None:
        """The context for one attempt; `endpoint` is the mesh endpoint (or None), `contexts` our mesh TLS."""
        if settings.mode == "DISABLE":
            return None
        if settings.mode == "ISTIO_MUTUAL":
            if contexts is None:
                raise UpstreamConnectFailure("the DestinationRule asks for ISTIO_MUTUAL and this sidecar holds no "
                                             "mesh certificate (no join token)")
            # The rule's subjectAltNames, when given, replace the identity the endpoint registered with.
            expected = settings.subject_alt_names[0] if settings.subject_alt_names else (
                endpoint.identity if endpoint is not None else None)
            return contexts.client_expecting(expected)
        server_name = settings.sni or host
        ctx = self._contexts.get((settings, server_name))
        if ctx is None:
            ctx = self._contexts[(settings, server_name)] = _context(settings, server_name)
        return ctx


def _context(settings: ClientTLS, server_name: str) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca_certificates)
        if settings.mode == "MUTUAL":
            ctx.load_cert_chain(settings.client_certificate, settings.private_key)
    except (OSError, ssl.SSLError) as e:
        raise UpstreamConnectFailure(f"cannot load the DestinationRule's TLS files: {e}") from e
    if settings.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif settings.subject_alt_names:
        ctx.check_hostname = False  # the chain is still verified; the names are checked after the handshake
        ctx.verify_peer = _san_check(settings.subject_alt_names)
    ctx.server_name = server_name  # the SNI sent, and the name checked (pool.py)
    ctx.mutual = settings.mode == "MUTUAL"  # telemetry: mutual TLS only when we present a certificate
    return ctx


def _san_check(wanted: tuple[str, ...]):
    def verify(ssl_object) -> str | None:
        """None when the server's certificate names one of `wanted`; else why not."""
        # The chain is verified by now, so the ssl module has decoded the certificate for us.
        sans = (ssl_object.getpeercert() or {}).get("subjectAltName", ()) if ssl_object is not None else ()
        names = [v for kind, v in sans if kind == "DNS"] + [v for kind, v in sans if kind == "URI"]
        if any(name in wanted for name in names):
            return None
        return f"the server's certificate names {', '.join(names) or 'nothing'}, not {', '.join(wanted)} " \
               "(subjectAltNames)"
    return verify
