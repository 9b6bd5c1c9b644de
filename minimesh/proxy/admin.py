"""The sidecar's admin listener: what a learner (or the runner) asks a proxy.

    /ready        200 once registered and holding a snapshot, else 503
    /config_dump  the snapshot in force, and the last one refused (NACKed)
    /stats        request counters (stats.py), the telemetry exporter's state (export.py),
                  circuit breakers (breaker.py), connection pools (pool.py) and ejections (outlier.py)
    /certs        this sidecar's SPIFFE ID and certificate: serial, expiry, past serials
    /metrics      Prometheus text format (metrics.py)

Envoy's admin interface has the same three, under the same names.
"""

from __future__ import annotations

from aiohttp import web

from minimesh.config.secret import redacted


def build_admin(sidecar) -> web.Application:
    async def ready(_):
        if sidecar.is_ready():
            return web.json_response({"ready": True, "version": sidecar.holder.current.version})
        return web.json_response({"ready": False, "registered": sidecar.client is not None and sidecar.client.registered.is_set(),
                                  "snapshot": sidecar.holder.received.is_set()}, status=503)

    async def config_dump(_):
        holder = sidecar.holder
        return web.json_response({
            "node": sidecar.identity,
            "version": holder.current.version,
            "config_version": holder.current.config_version,
            # A TLS Secret (gateway only) shows its fingerprint, never its key (config/secret.py).
            "snapshot": holder.raw and {**holder.raw, "resources": [redacted(d) for d in holder.raw.get("resources", [])]},
            "last_nack": holder.last_nack,
            "control_plane_reachable": sidecar.client.reachable,
            "limits": sidecar.opts.limits.as_json(),
        })

    async def certs(_):
        workload = sidecar.workload
        if workload is None:
            return web.json_response({"identity": None, "certificate": None,
                                      "note": "no join token: this sidecar has no identity"})
        return web.json_response({"identity": workload.identity, "certificate": workload.summary(),
                                  "serials": list(workload.serials)})

    async def stats(_):
        exporter, telemetry = sidecar.exporter, sidecar.telemetry
        return web.json_response({**sidecar.stats.as_json(),
                                  "connections": {lst.name: lst.stats() for lst in sidecar.listeners},
                                  "telemetry": None if telemetry is None else {
            "access_log": telemetry.access_log.enabled, "trace_sampling": telemetry.sampling,
            **(exporter.status() if exporter is not None else {})},
            "breakers": sidecar.breakers.as_json(), "pools": sidecar.pool.counters(),
            "ejections": sidecar.outliers.report()})

    async def metrics(_):
        if sidecar.telemetry is not None:
            sidecar.telemetry.count()  # the requests noted since the last batch, too
        sidecar.metrics.set_config_version(sidecar.holder.current.config_version)
        return web.Response(body=sidecar.metrics.exposition(), headers={"content-type": sidecar.metrics.content_type})

    app = web.Application()
    app.router.add_get("/ready", ready)
    app.router.add_get("/config_dump", config_dump)
    app.router.add_get("/stats", stats)
    app.router.add_get("/certs", certs)
    app.router.add_get("/metrics", metrics)
    return app
