"""The listener edge: where a request enters a layer stack and its answer leaves.

This is the one place a `MeshError` becomes a response (linkerd's "rescue"):
its status, a plain-text body, and `x-minimesh-error` naming the response flag,
the layer that gave up and why. An error nobody expected becomes a 500 the
same way (flag IE) and one log line — never a traceback to the client. It is
also where each request is written to the access log and counted, once per
reporter, and where its span in the trace begins and ends (telemetry.py).
With telemetry off (`--no-telemetry`) only /stats counts; no trace headers are
touched, no metrics or access log.
"""

from __future__ import annotations

import logging
import time

from multidict import CIMultiDict

from minimesh.errors import InternalError, MeshError
from minimesh.proxy.message import Request, Response
from minimesh.proxy.observe.telemetry import PEER_HEADER, verified_peer

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
    """Runs `route(request)` for each request a listener parsed, and answers.

    `route` is a callable that prepares the request's journey and returns the
    layer stack to run it through (outbound, inbound and gateway differ there).
    """

    def __init__(self, direction: str, route, stats, reporter: dict, telemetry=None, guard=None):
        self.direction = direction
        self.route = route
        self.stats = stats
        self.reporter = reporter  # who we are: service, version, instance
        self.telemetry = telemetry  # RequestTelemetry, or None when telemetry is off
        self.guard = guard  # the sidecar's LoopGuard (loop_guard.py), or None
        # done() before the answer is written only when it writes an access-log line, which a reader
        # may look for the moment the answer arrives; counting alone waits until the answer is out:
        # no one outside the process can tell, and the answer does not wait (bench/RESULTS.md, tenth run).
        self.report_first = telemetry is not None and telemetry.access_log.enabled

    async def respond(self, request: Request) -> Response:
        try:
            if self.guard is not None:
                self.guard.arriving(request)
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
            return await stack(request)
        except MeshError as e:
            if e.flag:
                request.journey.flag(e.flag)
            return rescue(e, self.direction)
        except Exception as e:  # noqa: BLE001 - the one place an unexpected error becomes an answer
            log.error("%s: %s %s failed unexpectedly: %s: %s", self.direction, request.method, request.path,
                      type(e).__name__, e)
            log.debug("the unexpected error's traceback", exc_info=True)
            error = InternalError(f"{type(e).__name__}: {e}")
            request.journey.flag(error.flag)
            return rescue(error, self.direction)

    def done(self, request: Request, status: int) -> None:
        """The answer has been written (or the client left): count and log the request."""
        journey = request.journey
        duration_ms = (time.monotonic() - journey.started) * 1000
        self.stats.record(journey, status, duration_ms)
        if self.telemetry is None:
            return
        self.telemetry.finish(request, status, duration_ms)
