"""Where the sidecar's identity meets its config: which connections are mutual TLS.

Two small policies, one per direction, each reading the snapshot in force
and the sidecar's current certificate:

- `InboundSecurity` decides, per accepted connection, from its first byte and
  the PeerAuthentication mode for this workload (peer_auth.py), whether to
  run the mTLS handshake, serve plaintext, or close the connection;
- `AutoMTLS` decides, per upstream attempt, whether to connect with mTLS and
  which TLS context to use: the one that expects the SPIFFE ID the endpoint
  registered with — or refuses the attempt (secure_naming.py).
"""

from __future__ import annotations

import logging
import ssl

from minimesh.errors import UpstreamConnectFailure
from minimesh.proxy.identity import WorkloadIdentity
from minimesh.proxy.message import Request
from minimesh.proxy.inbound.peer_auth import effective_mode, inbound_action
from minimesh.proxy.outbound.origination import Originate
from minimesh.proxy.transport.sniffing import Action
from minimesh.proxy.outbound.secure_naming import Transport, upstream_security

log = logging.getLogger("minimesh.proxy")


class InboundSecurity:
    def __init__(self, holder, identity: WorkloadIdentity | None, labels: dict):
        self.holder, self.identity, self.labels = holder, identity, labels
        self._mode_for: tuple[object, str] | None = None  # (config, mode): worked out once per snapshot

    def mode(self) -> str:
        config = self.holder.current
        if self._mode_for is None or self._mode_for[0] is not config:
            self._mode_for = (config, effective_mode(config.resources, self.labels,
                                                          getattr(config, "namespace", "default")))
        return self._mode_for[1]

    def __call__(self, is_tls: bool) -> tuple[Action, ssl.SSLContext | None, str]:
        """(what to do, the server context for MTLS, the mode that decided it)."""
        mode = self.mode()
        contexts = self.identity.contexts(self.holder.current) if self.identity else None
        action = inbound_action(mode, is_tls, contexts is not None)
        return action, (contexts.server if contexts and action is Action.MTLS else None), mode

    @staticmethod
    def why_refused(is_tls: bool, mode: str, peer: str) -> str:
        """What the log says of a refused connection, after "refused " (sniffing.py)."""
        what = "a TLS" if is_tls else "a plaintext"
        unready = "" if not is_tls or mode == "DISABLE" else ", and no certificate yet"
        return f"{what} connection from {peer} (PeerAuthentication {mode}{unready})"


class AutoMTLS:
    def __init__(self, identity: WorkloadIdentity | None):
        self.identity = identity  # None: a sidecar without a certificate (only plaintext, where allowed)
        self.originate = Originate()  # a DestinationRule's tls, when the destination has one (origination.py)
        # (snapshot, {(endpoint address, holding a certificate?): its decision}): decided once per snapshot.
        self._decided: tuple[object, dict] = (None, {})

    def __call__(self, request: Request) -> ssl.SSLContext | None:
        """The TLS context for this attempt, None for plaintext; raises UF where neither is safe."""
        journey = request.journey
        config = journey.config
        endpoint = config.endpoint_at(journey.endpoint) if config is not None else None
        policy = journey.cluster.policy if journey.cluster is not None else None
        if policy is not None and policy.tls is not None:  # the DestinationRule decides, not auto mTLS
            contexts = self.identity.contexts(config) if self.identity is not None else None
            ctx = self.originate(policy.tls, request.authority.rsplit(":", 1)[0], endpoint, contexts)
            journey.upstream_security = f"tls {policy.tls.mode}" if ctx is not None else "plaintext"
            return ctx
        if endpoint is None:
            return None  # not a mesh endpoint (a pass-through host)
        contexts = self.identity.contexts(config) if self.identity is not None else None
        decided = self._decided[1] if self._decided[0] is config else None
        if decided is None:
            self._decided = (config, decided := {})
        key = (endpoint.address, contexts is not None)
        decision = decided.get(key)
        if decision is None:  # pure in the endpoint (of this snapshot) and whether we hold a certificate
            decision = decided[key] = upstream_security(endpoint.mtls_mode, endpoint.identity, contexts is not None,
                                                        f"endpoint {endpoint.instance} ({journey.endpoint})")
        journey.upstream_security = decision.label
        if decision.transport is Transport.REFUSE:
            raise UpstreamConnectFailure(decision.reason)
        if decision.transport is Transport.PLAINTEXT:
            return None
        return contexts.client_expecting(decision.expected_identity)
