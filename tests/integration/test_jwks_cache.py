"""The jwksUri cache against a real local JWKS server: fetched once, refreshed when stale, kept on failure.

Time is a fake clock the test moves; the server is real (aiohttp on a free port).
"""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from minimesh.proxy.inbound.jwks import RETRY_S, JwksCache
from tests.support.shop import free_port, serve_routes

pytestmark = pytest.mark.timeout(30)


def jwk(kid: str) -> dict:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {**json.loads(ECAlgorithm.to_jwk(public)), "kid": kid}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_fetch_cache_refresh_and_keep_last_good():
    served = {"keys": [jwk("one")]}
    state = {"status": 200, "hits": 0}

    async def handler(request):
        state["hits"] += 1
        return web.json_response(served, status=state["status"])
    runner, port = await serve_routes(web.get("/jwks", handler))
    uri = f"http://127.0.0.1:{port}/jwks"
    clock = Clock()
    cache = JwksCache(clock=clock, refresh_s=60)
    try:
        # First use fetches; the next ones are served from the cache.
        keys = await cache.keys(uri, 2.0)
        assert [k.key_id for k in keys.keys] == ["one"]
        assert [k.key_id for k in (await cache.keys(uri, 2.0)).keys] == ["one"]
        assert state["hits"] == 1

        # The server rotates its key; once the cached set is older than the refresh
        # interval the next use refetches in the background, still answering with the old set.
        served["keys"] = [jwk("two")]
        clock.now += 61
        assert [k.key_id for k in (await cache.keys(uri, 2.0)).keys] == ["one"]
        await cache._fetching[uri]
        assert [k.key_id for k in (await cache.keys(uri, 2.0)).keys] == ["two"] and state["hits"] == 2

        # A failing refresh keeps the last good set, and is not retried before RETRY_S.
        state["status"] = 500
        clock.now += 61
        await cache.keys(uri, 2.0)
        await cache._fetching[uri]
        assert [k.key_id for k in (await cache.keys(uri, 2.0)).keys] == ["two"]
        hits = state["hits"]
        await cache.keys(uri, 2.0)
        assert state["hits"] == hits
        clock.now += RETRY_S
        await cache.keys(uri, 2.0)
        await cache._fetching[uri]
        assert state["hits"] == hits + 1

        # A key server that never answered: no keys (the token gets 401), and no retry storm.
        dead = f"http://127.0.0.1:{free_port()}/jwks"
        assert await cache.keys(dead, 2.0) is None
        assert await cache.keys(dead, 2.0) is None and dead in cache.failed_at
    finally:
        await runner.cleanup()
