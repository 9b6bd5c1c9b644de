"""The ingress gateway: the one way into the mesh from outside.

It is a sidecar with no app of its own. A request's Host header names the
mesh service it is for (`curl -H 'Host: pricing' GATEWAY/prices`); a Host that
names no service goes to the lesson's default service (usually `web`), so a
browser pointed at the gateway sees the shop. From there the request travels
the same outbound stack as any sidecar's (outbound.py), after the gateway's
own RequestAuthentication and AuthorizationPolicy (policies selecting the
gateway's labels, `istio: ingressgateway`, as on Istio).
"""

from __future__ import annotations

from minimesh.errors import NoRoute
from minimesh.proxy.inbound.authz import Authorize, Workload
from minimesh.proxy.headers import add_forwarding
from minimesh.proxy.inbound.jwks import JwksCache
from minimesh.proxy.inbound.jwt_authn import Authenticate
from minimesh.proxy.message import Request
from minimesh.proxy.outbound.stack import build_outbound_stack, service_of


# Istio's ingress gateway pods carry these labels; policies select the gateway by them.
GATEWAY_LABELS = {"istio": "ingressgateway"}


class GatewayRouter:
    def __init__(self, config_holder, pool, in_flight, default_service: str | None,
                 workload: Workload | None = None, jwks: JwksCache | None = None, breakers=None, outliers=None):
        self.config_holder = config_holder
        self.default_service = default_service
        workload = workload or Workload(GATEWAY_LABELS)
        stack = build_outbound_stack(pool, in_flight, breakers=breakers, outliers=outliers,
                                     labels=workload.labels)  # 3. route and send on, as any sidecar's outbound
        stack = Authorize(stack, workload)                # 2. AuthorizationPolicy selecting the gateway (403)
        self.mesh = Authenticate(stack, workload, jwks or JwksCache())  # 1. its RequestAuthentication (401)

    def __call__(self, request: Request):
        config = self.config_holder.current
        journey = request.journey
        journey.config = config
        client_ip = request.client.split(":")[0] if request.client else ""
        add_forwarding(request.headers, client_ip)
        service = service_of(request.authority)
        if config.cluster(service, None) is None:
            if not self.default_service:
                raise NoRoute(f"Host {request.authority!r} names no mesh service and the gateway has no default")
            service = self.default_service
            request.authority = service
        journey.service = service
        return self.mesh
