"""Traffic mirroring: send a copy of live requests to another destination.

A route's `mirror` (with `mirrorPercentage`, default 100 %) sends a shadow
copy of each request to another service or subset — a new version can see
production traffic before it serves anyone. As in Envoy, the copy is fire and
forget: its answer is thrown away, it never slows or fails the real request,
and its Host gets a `-shadow` suffix so the mirror can tell copies apart.
Only requests whose body we hold in full can be copied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random

from multidict import CIMultiDict

from minimesh.errors import MeshError
from minimesh.proxy.connect import Forward
from minimesh.proxy.fault import roll
from minimesh.proxy.message import Journey, Request, Response, Service

log = logging.getLogger("minimesh.proxy")


class Mirror:
    """Layer: start the shadow copy, then carry on with the real request."""

    def __init__(self, inner: Service, pool, rand: random.Random = random):
        self.inner = inner
        self.forward = Forward(pool)  # the same last hop as real requests: mTLS where due
        self.rand = rand
        self._shadows: set[asyncio.Task] = set()  # keep a reference until each copy is done

    async def __call__(self, request: Request) -> Response:
        route = request.journey.http_route
        if route.mirror is not None and request.replayable and roll(route.mirror_percentage or 100, self.rand):
            cluster = request.journey.config.cluster(route.mirror.host, route.mirror.subset)
            if cluster is not None and cluster.endpoints:
                endpoint = self.rand.choice(cluster.endpoints)
                task = asyncio.create_task(self._shadow(endpoint.address, request))
                self._shadows.add(task)
                task.add_done_callback(self._shadows.discard)
        return await self.inner(request)

    async def _shadow(self, address: str, request: Request) -> None:
        host = request.authority.split(":")[0]
        journey = Journey("mirror", config=request.journey.config, endpoint=address)
        copy = dataclasses.replace(request, authority=f"{host}-shadow", headers=CIMultiDict(request.headers),
                                   journey=journey)
        try:
            response = await self.forward(copy)
            await response.discard()
        except MeshError as e:  # a shadow's failure is nobody's business but the log's
            log.debug("mirror copy to %s failed: %s", address, e.reason)
