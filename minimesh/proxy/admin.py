"""The sidecar's admin listener: what a learner (or the runner) asks a proxy.

    /ready        200 once registered and holding a snapshot, else 503
    /config_dump  the snapshot in force, and the last one refused (NACKed)
    /stats        request counters (stats.py), the telemetry exporter's state (export.py),
                  circuit breakers (breaker.py), connection pools (pool.py) and ejections (outlier.py)
    /certs        this sidecar's SPIFFE ID and certificate: serial, expiry, past serials
    /metrics      Prometheus text format (metrics.py)

Envoy's admin interface has the same three, under the same names.

It is served by the data plane's own HTTP server (transport/listener.py),
with the same limits and timeouts as the other listeners; `Admin` is its
handler, as an `Edge` is theirs. GET and HEAD only (405 otherwise), 404 for
any other path.
"""

from __future__ import annotations

import json

from multidict import CIMultiDict

from minimesh.config.secret import redacted
from minimesh.proxy.message import Request, Response

JSON = "application/json; charset=utf-8"

def json_response(doc, status: int = 200) -> Response:
    return Response(status, CIMultiDict({"content-type": JSON}), json.dumps(doc).encode())


def text(status: int, body: str, **headers) -> Response:
    return Response(status, CIMultiDict({"content-type": "text/plain; charset=utf-8", **headers}), body.encode())


class Admin:
    """The admin listener's handler: one method per path."""

    direction = "admin"

    def __init__(self, sidecar):
        self.sidecar = sidecar
        self.routes = {"/ready": self.ready, "/config_dump": self.config_dump, "/stats": self.stats,
                       "/certs": self.certs, "/metrics": self.metrics}

    async def respond(self, request: Request) -> Response:
        page = self.routes.get(request.path.partition("?")[0])
        if page is None:
            return text(404, "404: Not Found")
        if request.method not in ("GET", "HEAD"):
            return text(405, "405: Method Not Allowed", allow="GET,HEAD")
        return page()

    def done(self, request: Request, status: int) -> None:
        """Admin requests are not the mesh's traffic: not counted, not traced."""

    def ready(self) -> Response:
        sidecar = self.sidecar
        if sidecar.is_ready():
            return json_response({"ready": True, "version": sidecar.holder.current.version})
        return json_response({"ready": False, "registered": sidecar.client is not None and sidecar.client.registered.is_set(),
                              "snapshot": sidecar.holder.received.is_set()}, status=503)

    def config_dump(self) -> Response:
        sidecar = self.sidecar
        holder = sidecar.holder
        return json_response({
            "node": sidecar.identity,
            "version": holder.current.version,
            "config_version": holder.current.config_version,
            # A TLS Secret (gateway only) shows its fingerprint, never its key (config/secret.py).
            "snapshot": holder.raw and {**holder.raw, "resources": [redacted(d) for d in holder.raw.get("resources", [])]},
            "last_nack": holder.last_nack,
            "control_plane_reachable": sidecar.client.reachable,
            "limits": sidecar.opts.limits.as_json(),
        })

    def certs(self) -> Response:
        workload = self.sidecar.workload
        if workload is None:
            return json_response({"identity": None, "certificate": None,
                                  "note": "no join token: this sidecar has no identity"})
        return json_response({"identity": workload.identity, "certificate": workload.summary(),
                              "serials": list(workload.serials)})

    def stats(self) -> Response:
        sidecar = self.sidecar
        exporter, telemetry = sidecar.exporter, sidecar.telemetry
        return json_response({**sidecar.stats.as_json(),
                              "connections": {lst.name: lst.stats() for lst in sidecar.listeners},
                              "telemetry": None if telemetry is None else {
            "access_log": telemetry.access_log.enabled, "trace_sampling": telemetry.sampling,
            **(exporter.status() if exporter is not None else {})},
            "breakers": sidecar.breakers.as_json(), "pools": sidecar.pool.counters(),
            "ejections": sidecar.outliers.report()})

    def metrics(self) -> Response:
        sidecar = self.sidecar
        if sidecar.telemetry is not None:
            sidecar.telemetry.count()  # the requests noted since the last batch, too
        sidecar.metrics.set_config_version(sidecar.holder.current.config_version)
        return Response(200, CIMultiDict({"content-type": sidecar.metrics.content_type}), sidecar.metrics.exposition())
