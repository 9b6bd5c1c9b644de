"""Fault injection: break things on purpose, to see what the rest of the mesh does.

A route's `fault` block (Istio's HTTPFaultInjection) delays some requests by
a fixed time and aborts some with a chosen status, each for a `percentage`
of requests. Envoy's fault filter sits before the router, so an injected
delay is not counted against the route's timeout, and an abort never reaches
an upstream — nor is it retried: it is the answer. The access log marks them
DI (delay injected) and FI (fault injected, the abort).

A fault without `percentage` (or delay's deprecated integer `percent`)
touches no request, as on Istio — the config parser sets its share to 0 and
`minimesh apply` warns, because the opposite was once documented and the
surprise has cost users hours (istio/istio issues 36303, 39969).
"""

from __future__ import annotations

import asyncio
import random
from typing import Awaitable

from minimesh.errors import FaultAbort
from minimesh.proxy.message import Request, Response, Service


def roll(percentage: float, rand=random) -> bool:
    """True for `percentage` % of calls."""
    return percentage >= 100 or rand.random() * 100 < percentage


class InjectFault:
    """Layer: delay and/or abort as the matched route's `fault` block says."""

    def __init__(self, inner: Service, sleep=asyncio.sleep, rand: random.Random = random):
        self.inner = inner
        self.sleep = sleep
        self.rand = rand

    def __call__(self, request: Request) -> Awaitable[Response]:
        fault = request.journey.http_route.fault
        if fault is None:
            return self.inner(request)  # no fault: the next layer's awaitable, no frame of ours
        return self._inject(request, fault)

    async def _inject(self, request: Request, fault) -> Response:
        if fault.delay is not None and roll(fault.delay.percentage, self.rand):
            request.journey.flag("DI")
            await self.sleep(fault.delay.fixed_delay)
        if fault.abort is not None and roll(fault.abort.percentage, self.rand):
            raise FaultAbort(fault.abort.http_status,
                             f"route {request.journey.route} aborts {fault.abort.percentage:g} % of requests "
                             f"with {fault.abort.http_status} (fault.abort)")
        return await self.inner(request)
