"""The innermost layer: send one attempt over a pooled connection.

By the time a request gets here every decision is made — route, destination,
endpoint — and all that is left is I/O: over mutual TLS when the sidecar's
auto-mTLS policy says so for this endpoint (mtls.py), else plaintext.
"""

from __future__ import annotations

import functools

from minimesh.proxy.message import Request, Response
from minimesh.proxy.transport.pool import ConnectionSettings, UpstreamPool


@functools.lru_cache(maxsize=256)
def connection_settings(pool) -> ConnectionSettings:
    """The transport's settings for a config.ConnectionPool (frozen, so worked out once)."""
    return ConnectionSettings.of(pool)


class Forward:
    """Layer: send the request to the endpoint the balancer picked."""

    def __init__(self, pool: UpstreamPool):
        self.pool = pool

    async def __call__(self, request: Request) -> Response:
        tls = self.pool.mtls(request) if self.pool.mtls is not None else None
        cluster = request.journey.cluster
        pool = cluster.policy.connection_pool if cluster is not None and cluster.policy is not None else None
        if pool is None:
            response = await self.pool.send(request.journey.endpoint, request, tls)
        else:
            # The destination's connectionPool: its own connect/idle timeouts, keepalive, requests per connection.
            response = await self.pool.send(request.journey.endpoint, request, tls,
                                            settings=connection_settings(pool), destination=cluster.name)
        # What telemetry reports for this outbound hop: mutual TLS or not, and the identity the
        # upstream proved (the pool refuses a certificate naming anyone else: secure naming).
        # (The inbound hop to our own app, inbound/retry.py, keeps the caller's, set by the listener.)
        request.journey.mtls = tls is not None and getattr(tls, "mutual", True)  # SIMPLE origination: not mutual
        request.journey.peer_identity = getattr(tls, "expected_peer", None) if tls is not None else None
        return response


class PassThrough:
    """Layer: send a request for a host outside the mesh straight to it (Istio's ALLOW_ANY)."""

    def __init__(self, pool: UpstreamPool):
        self.pool = pool

    async def __call__(self, request: Request) -> Response:
        authority = request.authority
        address = authority if ":" in authority.rsplit("]", 1)[-1] else f"{authority}:80"
        request.journey.endpoint = address
        return await self.pool.send(address, request)
