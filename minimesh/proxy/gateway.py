"""The ingress gateway: the one way into the mesh from outside.

It is a sidecar with no app of its own, labelled `istio: ingressgateway` and
holding Istio's ingress identity (`istio-system/istio-ingressgateway-service-account`).
It serves what Gateway resources open and the VirtualServices bound to them
route (ingress.py); any other Host gets 404 NR, as on Istio. It listens on
two ports, standing for the ports of Istio's ingress gateway Service: 80
(HTTP) and 443 (HTTPS, TLS terminated with a Gateway server's certificate,
gateway_tls.py); one router per port, each seeing only that port's servers. Each lesson
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

from dataclasses import replace

from multidict import CIMultiDict

from minimesh.proxy.inbound.authz import Authorize, Workload
from minimesh.proxy.headers import add_forwarding
from minimesh.proxy.ingress import Ingress
from minimesh.proxy.inbound.jwks import JwksCache
from minimesh.proxy.inbound.jwt_authn import Authenticate
from minimesh.config.gateway import HTTP_PORT, HTTPS_PORT
from minimesh.proxy.message import Request, Response
from minimesh.proxy.outbound.stack import build_outbound_stack, host_of


# Istio's ingress gateway pods carry these labels; Gateways and policies select the gateway by them.
GATEWAY_LABELS = {"istio": "ingressgateway"}
# Istio's ingress gateway pod listens on 8080 and 8443 behind its Service's 80 and 443; a policy
# selecting the gateway names those (`ports`, `destination.port`: workload ports, never Service ports).
POD_PORTS = {HTTP_PORT: 8080, HTTPS_PORT: 8443}


class GatewayRouter:
    def __init__(self, config_holder, pool, in_flight, workload: Workload | None = None,
                 jwks: JwksCache | None = None, breakers=None, outliers=None, port: int = HTTP_PORT):
        self.config_holder = config_holder
        self.port = port  # the Gateway server port this router's listener stands for
        self.workload = replace(workload or Workload(GATEWAY_LABELS), port=POD_PORTS[port])
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
        found = self.ingress(config).route(host_of(request.authority), self.port, journey.tls_server)
        journey.virtual_service, journey.no_route = found.virtual_service, found.no_route
        if found.https_redirect:
            return https_redirect
        return self.mesh


async def https_redirect(request: Request) -> Response:
    """An HTTP server with `tls.httpsRedirect`: 301 to the same URL over https, as Envoy's require_tls."""
    host = request.authority[:-3] if request.authority.endswith(":80") else request.authority
    return Response(301, CIMultiDict({"location": f"https://{host}{request.path}"}), b"")
