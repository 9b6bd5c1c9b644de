"""The ingress gateway: the one way into the mesh from outside.

It is a sidecar with no app of its own, labelled `istio: ingressgateway` and
holding Istio's ingress identity (`istio-system/istio-ingressgateway-service-account`).
It serves what Gateway resources open and the VirtualServices bound to them
route (ingress.py); any other Host gets 404 NR, as on Istio. Each lesson
ships its Gateway + VirtualService in YAML (`gateway.yaml`): the shop on
`*`, and each service by its name for `curl -H 'Host: pricing'`.

From there the request travels the same outbound stack as any sidecar's
(outbound/stack.py) — but with the bound VirtualService's route, not the
mesh's: a VirtualService without `gateways:` never applies here. First come
the gateway's own RequestAuthentication and AuthorizationPolicy (policies
selecting `istio: ingressgateway`), so a denied request is 403 before any
route is looked at, as Envoy's RBAC filter runs before its router.
"""

from __future__ import annotations

from minimesh.proxy.inbound.authz import Authorize, Workload
from minimesh.proxy.headers import add_forwarding
from minimesh.proxy.ingress import Ingress
from minimesh.proxy.inbound.jwks import JwksCache
from minimesh.proxy.inbound.jwt_authn import Authenticate
from minimesh.proxy.message import Request
from minimesh.proxy.outbound.stack import build_outbound_stack, host_of


# Istio's ingress gateway pods carry these labels; Gateways and policies select the gateway by them.
GATEWAY_LABELS = {"istio": "ingressgateway"}


class GatewayRouter:
    def __init__(self, config_holder, pool, in_flight, workload: Workload | None = None,
                 jwks: JwksCache | None = None, breakers=None, outliers=None):
        self.config_holder = config_holder
        self.workload = workload or Workload(GATEWAY_LABELS)
        self._ingress: tuple[object, Ingress] | None = None  # (config, its routes): worked out once per snapshot
        stack = build_outbound_stack(pool, in_flight, breakers=breakers, outliers=outliers,
                                     labels=self.workload.labels)  # 3. the bound route, sent on as any sidecar's outbound
        stack = Authorize(stack, self.workload)           # 2. AuthorizationPolicy selecting the gateway (403)
        self.mesh = Authenticate(stack, self.workload, jwks or JwksCache())  # 1. its RequestAuthentication (401)

    def ingress(self, config) -> Ingress:
        if self._ingress is None or self._ingress[0] is not config:
            self._ingress = (config, Ingress(config.resources, self.workload.labels, self.workload.namespace))
        return self._ingress[1]

    def __call__(self, request: Request):
        config = self.config_holder.current
        journey = request.journey
        journey.config = config
        client_ip = request.client.split(":")[0] if request.client else ""
        add_forwarding(request.headers, client_ip)
        # The route layer applies this VirtualService, or answers 404 NR with the reason (route.py).
        journey.virtual_service, journey.no_route = self.ingress(config).route(host_of(request.authority))
        return self.mesh
