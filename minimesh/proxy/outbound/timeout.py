"""The route timeout: how long the whole request may take, retries included.

Istio's `timeout` on an http route bounds everything the sidecar does for
the request — every attempt and every backoff between them — until the
response starts. Without one (Istio's default) a request may wait as long as
the upstream takes; `perTryTimeout` (retry.py) bounds a single attempt.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable

from minimesh.errors import UpstreamTimeout
from minimesh.proxy.message import Request, Response, Service


class RouteTimeout:
    """Layer: give up with 504 UT when the route's timeout runs out."""

    def __init__(self, inner: Service):
        self.inner = inner

    def __call__(self, request: Request) -> Awaitable[Response]:
        limit = request.journey.http_route.timeout
        if not limit:
            return self.inner(request)  # no timeout: the next layer's awaitable, no frame of ours
        return self._bounded(request, limit)

    async def _bounded(self, request: Request, limit: float) -> Response:
        try:
            async with asyncio.timeout(limit):
                return await self.inner(request)
        except TimeoutError as e:
            raise UpstreamTimeout(f"route {request.journey.route} timed out after {limit:g}s") from e
