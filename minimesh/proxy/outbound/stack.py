"""The outbound journey: from the app's request to a chosen upstream endpoint.

The app sends every request to its sidecar's outbound listener as to an HTTP
forward proxy (`HTTP_PROXY`): `GET http://catalog/items`. If `catalog` is a
mesh service, or a host a ServiceEntry declares, the request travels the
stack below; any other host is passed straight through (Istio's default
`outboundTrafficPolicy: ALLOW_ANY`) and reported as external — or refused
with 502 BH under a Sidecar's REGISTRY_ONLY (egress.py decides).

A layer with nothing to do once its inner layer has answered (most of them,
for most requests) is a plain function that returns the inner layer's
awaitable rather than a coroutine awaiting it: a coroutine frame fewer per
layer per request.

The stack is built innermost first; read it bottom-up for the order a
request meets the layers:
"""

from __future__ import annotations

import random

from minimesh.config import short_host
from minimesh.proxy.outbound.balancer import Balance, InFlight
from minimesh.proxy.outbound.breaker import Breakers, CircuitBreak
from minimesh.proxy.outbound.connect import Forward, PassThrough
from minimesh.proxy.outbound.cors import Cors
from minimesh.proxy.outbound.egress import decide, sidecar_for
from minimesh.proxy.outbound.header_ops import HeaderOps
from minimesh.proxy.outbound.redirect import AnswerLocally
from minimesh.proxy.outbound.rewrite import Rewrite
from minimesh.proxy.headers import add_forwarding
from minimesh.proxy.outbound.fault import InjectFault
from minimesh.proxy.message import Request
from minimesh.proxy.outbound.mirror import Mirror
from minimesh.proxy.outbound.outlier import DetectOutliers, Outliers
from minimesh.proxy.transport.pool import UpstreamPool
from minimesh.proxy.outbound.retry import Retry
from minimesh.proxy.outbound.route import MatchRoute
from minimesh.proxy.outbound.split import SplitTraffic
from minimesh.proxy.outbound.timeout import RouteTimeout

EGRESS_MEMO = 1024  # authorities whose egress decision is remembered per snapshot


def build_outbound_stack(pool: UpstreamPool, in_flight: InFlight, rand: random.Random = random,
                         breakers: Breakers | None = None, outliers: Outliers | None = None, labels=None):
    breakers = breakers if breakers is not None else Breakers()
    outliers = outliers if outliers is not None else Outliers()
    stack = Forward(pool)                  # 9. send over a pooled connection to the endpoint
    stack = DetectOutliers(stack, outliers)  # 8. count how each attempt at an endpoint ended (ejections)
    stack = Balance(stack, in_flight, rand, outliers)  # 7. pick a non-ejected endpoint (LB policy, ring hash, warmup)
    stack = CircuitBreak(stack, breakers)  # 6. connectionPool limits: a connection slot, pending, or 503 UO
    stack = Retry(stack, rand=rand, breakers=breakers)  # 5. per-try timeout; retry per retryOn (maxRetries, budget)
    stack = RouteTimeout(stack)            # 4. the route's overall timeout
    stack = Mirror(stack, pool, rand)      # 3c. shadow copies to the route's mirror(s), headers and rewrite included
    stack = HeaderOps(stack)               # 3b. headers: the destination's set/add/remove, then the route's
    stack = SplitTraffic(stack, rand)      # 3a. weighted destination -> service + subset (port: else 503 NC)
    stack = Rewrite(stack)                 # 2d. rewrite: the path (prefix or regex) and Host sent upstream
    stack = AnswerLocally(stack)           # 2c. redirect / directResponse: answered here, no upstream
    stack = InjectFault(stack, rand=rand)  # 2b. the route's fault: delay and/or abort
    stack = Cors(stack)                    # 2a. corsPolicy: answer allowed preflights, mark allowed origins
    stack = MatchRoute(stack, labels)      # 1. which VirtualService http route applies (sourceLabels: ours)
    return stack


class OutboundRouter:
    """Decides, per request, between the mesh stack and pass-through."""

    def __init__(self, config_holder, pool: UpstreamPool, in_flight: InFlight, breakers: Breakers | None = None,
                 outliers: Outliers | None = None, labels=None):
        self.config_holder = config_holder
        self.labels = labels or {}  # the workload's labels: which Sidecar resource applies (egress.py)
        self._sidecar: tuple[object, object] = (None, None)  # (config, its Sidecar for us), once per snapshot
        self._egress: dict = {}  # authority -> egress.decide()'s answer, for the snapshot in _sidecar
        self.mesh = build_outbound_stack(pool, in_flight, breakers=breakers, outliers=outliers, labels=labels)
        self.passthrough = PassThrough(pool)

    def __call__(self, request: Request):
        config = self.config_holder.current
        journey = request.journey
        journey.config = config
        add_forwarding(request.headers, "")
        if self._sidecar[0] is not config:
            self._sidecar = (config, sidecar_for(config.resources, self.labels, config.namespace))
            self._egress = {}
        # The decision is pure for one snapshot: remembered per authority (a refusal is not: it raises).
        egress = self._egress.get(request.authority)
        if egress is None:
            egress = decide(config, request.authority, self._sidecar[1])  # EgressBlocked: 502 BH
            if len(self._egress) >= EGRESS_MEMO:
                self._egress.clear()  # authorities are the clients' to choose: the memo stays bounded
            self._egress[request.authority] = egress
        if egress.service is not None:
            journey.service = egress.service
            journey.external = egress.external  # a MESH_EXTERNAL ServiceEntry host: leaving the mesh, routed
            return self.mesh
        journey.external = True
        journey.service = request.authority
        return self.passthrough


def host_of(authority: str) -> str:
    """'catalog:80' -> 'catalog' (an IPv6 literal keeps its colons)."""
    host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    return host.lower()


def service_of(authority: str) -> str:
    """'catalog', 'catalog:80' and 'catalog.default.svc.cluster.local' all mean catalog (in default)."""
    return short_host(host_of(authority))
