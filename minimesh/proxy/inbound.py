"""The inbound journey: from another sidecar (or the gateway) to our own app.

Requests arrive on the inbound listener and go to the app on loopback. Who
is calling was settled when the connection was accepted: PeerAuthentication
decided mTLS or plaintext (sniffing.py, mtls.py) and the caller's SPIFFE ID
is on the journey (`peer_identity`) for telemetry and AuthorizationPolicy. An app that
refuses the connection is a 503 UF, as in Envoy; there are no retries on the
inbound side — retrying is the caller's decision.
"""

from __future__ import annotations

from minimesh.proxy.connect import Forward
from minimesh.proxy.headers import add_forwarding
from minimesh.proxy.message import Request


class InboundRouter:
    def __init__(self, config_holder, pool, service: str, app_port: int):
        self.config_holder = config_holder
        self.service = service
        self.app_address = f"127.0.0.1:{app_port}"
        self.stack = Forward(pool, secure=False)  # 1. the app, over a pooled loopback connection (plaintext)

    def __call__(self, request: Request):
        journey = request.journey
        journey.config = self.config_holder.current
        journey.service = self.service
        journey.endpoint = self.app_address
        add_forwarding(request.headers, "")
        return self.stack
