"""Traffic mirroring: send a copy of live requests to another destination.

A route's `mirror` (with `mirrorPercentage`) and each entry of `mirrors[]`
(with its own `percentage`; absent means 100 %) send a shadow copy of each
request to another service or subset — a new version can see production
traffic before it serves anyone. As in Envoy, the copy is fire and forget:
its answer is thrown away, it never slows or fails the real request (it is
started beside it, never awaited), and its Host gets a `-shadow` suffix so
the mirror can tell copies apart. The copy takes the same last hop as a real
request — auto mTLS included, with the mirror service's identity expected —
so mirroring works under STRICT PeerAuthentication. Only requests whose body
we hold in full can be copied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from typing import Awaitable

from multidict import CIMultiDict

from minimesh.config.virtualservice import SERVICE_PORT
from minimesh.errors import MeshError
from minimesh.proxy.outbound.connect import Forward
from minimesh.proxy.outbound.fault import roll
from minimesh.proxy.message import Journey, Request, Response, Service

log = logging.getLogger("minimesh.proxy")


def shadow_authority(authority: str) -> str:
    """Envoy's rule: '-shadow' after the host, before any port ('pricing:80' -> 'pricing-shadow:80')."""
    host, colon, port = authority.rpartition(":") if authority.count(":") == 1 else (authority, "", "")
    return f"{host}-shadow{colon}{port}"


class Mirror:
    """Layer: start a shadow copy per mirror policy of the route, then carry on with the real request."""

    def __init__(self, inner: Service, pool, rand: random.Random = random):
        self.inner = inner
        self.forward = Forward(pool)  # the same last hop as real requests: mTLS where due
        self.rand = rand
        self._shadows: set[asyncio.Task] = set()  # keep a reference until each copy is done

    def __call__(self, request: Request) -> Awaitable[Response]:
        route = request.journey.http_route
        if route.mirrors and request.replayable:
            for policy in route.mirrors:
                if roll(policy.percentage, self.rand):
                    self._start(policy.destination, request)
        return self.inner(request)  # nothing to do on the way back: no frame of ours

    def _start(self, destination, request: Request) -> None:
        config = request.journey.config
        cluster = config.cluster(destination.host, destination.subset)
        if cluster is None or not cluster.endpoints or destination.port not in (None, SERVICE_PORT):
            return  # no cluster for it (Envoy drops the copy); `minimesh analyze` names it (IST0101)
        endpoint = self.rand.choice(cluster.endpoints)
        journey = Journey("mirror", service=destination.host, subset=destination.subset, config=config,
                          cluster=cluster, endpoint=endpoint.address, endpoint_instance=endpoint.instance)
        copy = dataclasses.replace(request, authority=shadow_authority(request.authority),
                                   headers=CIMultiDict(request.headers), journey=journey)
        task = asyncio.create_task(self._shadow(copy))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(self, copy: Request) -> None:
        try:
            response = await self.forward(copy)
            await response.discard()
        except MeshError as e:  # a shadow's failure is nobody's business but the log's
            log.debug("mirror copy to %s failed: %s", copy.journey.endpoint, e.reason)
