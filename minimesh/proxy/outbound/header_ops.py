"""The route's and the destination's `headers`: set, add, remove — on the way up and back.

Envoy evaluates the most specific level first: the destination's (its
weighted cluster's) operations, then the route's, so where both `set` the
same header the route's value wins. Within one level, removals come first,
then `set` (overwrite) and `add` (one more value). Response operations run
on the upstream's answer in the same order — and on the answers the router
makes itself further in (503 UH, 504 UT, 503 UO ...), as Envoy's router
finalizes its local replies with the route's response headers too.

A request `set`/`add` of Host is Istio's authority rewrite (config/headers.py):
a route's became its `rewrite.authority` (rewrite.py); a destination's is
applied here, unless the route rewrites the authority itself — Envoy applies
the weighted cluster's host_rewrite first and the route's after it, and
Istio leaves a single destination's off when the route has one.
"""

from __future__ import annotations

from typing import Awaitable

from multidict import CIMultiDict

from minimesh.config.headers import HeaderOperations
from minimesh.errors import MeshError
from minimesh.proxy.message import Request, Response, Service
from minimesh.proxy.outbound.rewrite import rewrite_authority


def apply_operations(headers: CIMultiDict, ops: HeaderOperations) -> None:
    for name in ops.remove:
        headers.popall(name, None)
    for name, value in ops.set:
        headers[name] = value
    for name, value in ops.add:
        headers.add(name, value)


class HeaderOps:
    """Layer (after the split): the chosen destination's header operations, then the route's."""

    def __init__(self, inner: Service):
        self.inner = inner

    def __call__(self, request: Request) -> Awaitable[Response]:
        journey = request.journey
        if journey.destination_headers is None and journey.http_route.headers is None:
            return self.inner(request)  # most routes: nothing to do, not even a frame of ours
        return self._apply(request, journey)

    async def _apply(self, request: Request, journey) -> Response:
        levels = [h for h in (journey.destination_headers, journey.http_route.headers) if h is not None]
        for level in levels:
            apply_operations(request.headers, level.request)
        authority = levels[0].request.authority  # only a destination's is left here (config/headers.py)
        if authority is not None:
            rewrite = journey.http_route.rewrite
            if rewrite is None or rewrite.authority is None:
                rewrite_authority(request, authority)
        try:
            response = await self.inner(request)
        except MeshError as error:
            if any(level.response for level in levels):
                headers = CIMultiDict(error.headers)
                for level in levels:
                    apply_operations(headers, level.response)
                error.headers = dict(headers)  # the edge's rescue() adds them to its answer
            raise
        if any(level.response for level in levels):
            response.headers = CIMultiDict(response.headers)  # never change a header map the transport shares
            for level in levels:
                apply_operations(response.headers, level.response)
        return response
