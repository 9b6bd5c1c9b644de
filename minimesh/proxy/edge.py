"""The listener edge: where a request enters a layer stack and its answer leaves.

This is the one place a `MeshError` becomes a response (linkerd's "rescue"):
its status, a plain-text body, and `x-minimesh-error` naming the response flag,
the layer that gave up and why. It is also where each request is written to
the access log and counted, once per reporter, and where its span in the
trace begins and ends (telemetry.py). With telemetry off (`--no-telemetry`)
only /stats counts; no trace headers are touched, no metrics or access log.
"""

from __future__ import annotations

import logging
import time

from multidict import CIMultiDict

from minimesh.errors import MeshError
from minimesh.proxy.listener import read_request, write_response
from minimesh.proxy.message import Request, Response
from minimesh.proxy.telemetry import PEER_HEADER, verified_peer

log = logging.getLogger("minimesh.proxy")


def rescue(error: MeshError, direction: str) -> Response:
    """The response the mesh itself gives for `error`."""
    explanation = f"{error.flag or '-'} ({error.layer}, {direction}): {error.reason}"
    headers = CIMultiDict({"content-type": "text/plain; charset=utf-8",
                           "x-minimesh-error": explanation, **error.headers})
    # Where Envoy answers with a fixed body ("RBAC: access denied"), so do we:
    # clients and tests written against Istio read it.
    body = error.body.encode() if error.body is not None else f"minimesh: {error.status} {explanation}\n".encode()
    return Response(error.status, headers, body)


class Edge:
    """Turns aiohttp requests into minimesh ones, runs `route(request)`, and answers.

    `route` is a coroutine that prepares the request's journey and returns the
    layer stack to run it through (outbound, inbound and gateway differ there).
    """

    def __init__(self, direction: str, route, stats, reporter: dict, telemetry=None):
        self.direction = direction
        self.route = route
        self.stats = stats
        self.reporter = reporter  # who we are: service, version, instance
        self.telemetry = telemetry  # RequestTelemetry, or None when telemetry is off

    async def __call__(self, raw):
        request: Request | None = None
        try:
            request = await read_request(raw, self.direction)
            # Identity only from certificates: a client's own peer header is gone before any layer
            # (authorization, telemetry, the app) could read it; the inbound keeps what the cert proves.
            claimed = request.headers.popall(PEER_HEADER, None)
            if self.direction == "inbound":
                request.journey.peer = verified_peer(claimed[-1] if claimed else None, request.journey.peer_identity)
            if self.telemetry is not None:
                self.telemetry.begin(request)
            stack = self.route(request)
            if self.telemetry is not None:
                self.telemetry.routed(request)
            response = await stack(request)
        except MeshError as e:
            if request is not None and e.flag:
                request.journey.flag(e.flag)
            response = rescue(e, self.direction)
        status = response.status
        out = await write_response(raw, response)
        if request is not None:
            self._report(request, status)
        return out

    def _report(self, request: Request, status: int) -> None:
        journey = request.journey
        duration_ms = (time.monotonic() - journey.started) * 1000
        self.stats.record(journey, status, duration_ms)
        if self.telemetry is None:
            return
        self.telemetry.finish(request, status, duration_ms)
