"""The inbound journey: from another sidecar (or the gateway) to our own app.

Requests arrive on the inbound listener and go to the app on loopback. Who
is calling was settled when the connection was accepted: PeerAuthentication
decided mTLS or plaintext (sniffing.py, mtls.py) and the caller's SPIFFE ID
is on the journey (`peer_identity`) for telemetry and AuthorizationPolicy. An app that
refuses the connection is tried twice more, as Istio's default inbound route
does (retry_on reset-before-request: retry.py), then a 503 URX,UF; a request
the app received is never retried here.

The stack, built innermost first (read it bottom-up for the order a request
meets the layers):
"""

from __future__ import annotations

import asyncio

from minimesh.proxy.inbound.authz import Authorize, Workload
from minimesh.proxy.headers import add_forwarding
from minimesh.proxy.inbound.jwks import JwksCache
from minimesh.proxy.inbound.jwt_authn import Authenticate
from minimesh.proxy.inbound.retry import ToApp
from minimesh.proxy.message import Request


def build_inbound_stack(pool, workload: Workload, jwks: JwksCache, sleep=asyncio.sleep):
    stack = ToApp(pool, sleep)                   # 3. the app, over a pooled loopback connection (plaintext);
                                                 #    a connect failure is retried twice (Istio's inbound default)
    stack = Authorize(stack, workload)           # 2. AuthorizationPolicy: DENY, then ALLOW (403 RBAC)
    stack = Authenticate(stack, workload, jwks)  # 1. RequestAuthentication: verify a JWT if one came (401)
    return stack


class InboundRouter:
    def __init__(self, config_holder, pool, service: str, app_port: int, workload: Workload | None = None,
                 jwks: JwksCache | None = None, sleep=asyncio.sleep):
        self.config_holder = config_holder
        self.service = service
        self.app_address = f"127.0.0.1:{app_port}"
        workload = workload or Workload({"app": service})
        self.stack = build_inbound_stack(pool, workload, jwks or JwksCache(), sleep)  # sleep: the retry's backoff

    def __call__(self, request: Request):
        journey = request.journey
        journey.config = self.config_holder.current
        journey.service = self.service
        journey.endpoint = self.app_address
        add_forwarding(request.headers, "")
        return self.stack
