"""The route timeout: how long the whole request may take, retries included.

Istio's `timeout` on an http route bounds everything the sidecar does for
the request — every attempt and every backoff between them — until the
response starts. Without one (Istio's default) a request may wait as long as
the upstream takes; `perTryTimeout` (retry.py) bounds a single attempt.
"""

from __future__ import annotations

import asyncio

from minimesh.errors import UpstreamTimeout
from minimesh.proxy.message import Request, Response, Service


class RouteTimeout:
    """Layer: give up with 504 UT when the route's timeout runs out."""

    def __init__(self, inner: Service):
        self.inner = inner

    async def __call__(self, request: Request) -> Response:
        limit = request.journey.http_route.timeout
        if not limit:
            return await self.inner(request)
        try:
            async with asyncio.timeout(limit):
                return await self.inner(request)
        except TimeoutError as e:
            raise UpstreamTimeout(f"route {request.journey.route} timed out after {limit:g}s") from e
