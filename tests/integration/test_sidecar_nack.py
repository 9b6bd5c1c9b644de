"""A sidecar refuses a snapshot it cannot use (NACK) and keeps serving with its last good one.

The control plane here is a small aiohttp server of our own, speaking the
/v1 contract (notes/contracts.md): it lets the test decide exactly which
snapshot the sidecar gets, including broken ones the real control plane would
never send. The sidecar is the real `minimesh sidecar` process.
"""

import asyncio

import pytest
from aiohttp import web

from tests.support.control import wait_for
from tests.support.manifests import virtual_service
from tests.support.mesh import client_session, run_sidecar
from tests.support.shop import free_port

pytestmark = pytest.mark.timeout(60)


class FakeControlPlane:
    """/v1/register, /v1/watch (long-poll on version), /v1/ack, DELETE /v1/instances/{name}."""

    def __init__(self):
        self.snapshot: dict | None = None
        self.changed = asyncio.Condition()
        self.acks: list[dict] = []
        self.registrations: list[dict] = []
        self.deregistered: list[str] = []
        self.url = ""

    async def publish(self, snapshot: dict) -> None:
        async with self.changed:
            self.snapshot = snapshot
            self.changed.notify_all()

    async def register(self, request):
        self.registrations.append(await request.json())
        return web.json_response({"ttl": 10})

    async def watch(self, request):
        have = request.query.get("version", "")
        timeout = float(request.query.get("timeout", "30"))
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(
                    lambda: self.snapshot is not None and str(self.snapshot.get("version")) != have), timeout)
            except TimeoutError:
                return web.Response(status=204)
            return web.json_response(self.snapshot)

    async def ack(self, request):
        self.acks.append(await request.json())
        return web.json_response({"ok": True})

    async def deregister(self, request):
        self.deregistered.append(request.match_info["name"])
        return web.json_response({"deregistered": request.match_info["name"]})

    async def __aenter__(self):
        app = web.Application()
        app.router.add_post("/v1/register", self.register)
        app.router.add_get("/v1/watch", self.watch)
        app.router.add_post("/v1/ack", self.ack)
        app.router.add_delete("/v1/instances/{name}", self.deregister)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


async def catalog_upstream():
    """Stands in for catalog's inbound: answers who it is."""
    async def items(request):
        return web.json_response({"service": "catalog", "instance": "catalog-fake", "path": request.path_qs})
    runner = web.AppRunner(web.Application())
    runner.app.router.add_get("/items", items)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def snapshot(version, upstream_port, *resources):
    return {"version": version, "config_version": 1, "resources": list(resources),
            "services": {"catalog": {"endpoints": [{"instance": "catalog-fake",
                                                    "address": f"127.0.0.1:{upstream_port}",
                                                    "labels": {"app": "catalog", "version": "v1"}}]}}}


async def get_items(outbound):
    async with client_session() as http, http.get("http://catalog/items", proxy=outbound) as r:
        return r.status, await r.json(content_type=None) if r.status == 200 else await r.text()


BROKEN = {  # a snapshot whose outline is wrong: nothing in it can be trusted
    "services not a map": lambda port: {**snapshot("s2", port), "services": ["catalog"]},
    "resources not a list": lambda port: {**snapshot("s2", port), "resources": {"bogus": 1}},
}


@pytest.mark.parametrize("broken", list(BROKEN))
async def test_bad_snapshot_is_nacked_and_the_good_one_keeps_serving(tmp_path, broken):
    upstream, port = await catalog_upstream()
    try:
        async with FakeControlPlane() as cp:
            await cp.publish(snapshot("s1", port))
            async with run_sidecar(cp.url, "web", app_port=free_port(), log_dir=tmp_path) as sidecar:
                # The good snapshot is ACKed and routes traffic.
                await wait_for(lambda: _true(any(a["version"] == "s1" for a in cp.acks)), 5, what="ACK of s1")
                assert cp.acks[0] == {"node": sidecar.instance, "version": "s1", "error": None}
                assert (await get_items(sidecar.outbound))[0] == 200

                # The broken one is refused with a reason...
                await cp.publish(BROKEN[broken](port))
                [nack] = await wait_for(lambda: _true([a for a in cp.acks if a["version"] == "s2"]), 5,
                                        what="the sidecar to answer s2")
                assert nack["node"] == sidecar.instance and nack["error"], nack

                # ...the sidecar keeps the good one and says so...
                dump = await sidecar.config_dump()
                assert dump["version"] == "s1"
                assert dump["last_nack"]["version"] == "s2" and dump["last_nack"]["error"] == nack["error"]
                assert await sidecar.healthy()

                # ...and traffic still flows on it.
                status, body = await get_items(sidecar.outbound)
                assert status == 200 and body["instance"] == "catalog-fake"

                # A later good snapshot is taken again and clears the NACK.
                await cp.publish(snapshot("s3", port, virtual_service("catalog", timeout="5s")))
                await wait_for(lambda: _true(any(a["version"] == "s3" and a["error"] is None for a in cp.acks)),
                               5, what="ACK of s3")
                dump = await sidecar.config_dump()
                assert dump["version"] == "s3" and dump["last_nack"] is None
                assert (await get_items(sidecar.outbound))[0] == 200
            # On SIGTERM it said goodbye.
            assert cp.deregistered == [sidecar.instance]
    finally:
        await upstream.cleanup()


async def test_registration_names_the_listeners(tmp_path):
    async with FakeControlPlane() as cp:
        await cp.publish(snapshot("s1", 9))
        async with run_sidecar(cp.url, "pricing", app_port=4321, version="v2", log_dir=tmp_path) as sidecar:
            reg = cp.registrations[0]
            assert reg["kind"] == "sidecar" and reg["service"] == "pricing" and reg["version"] == "v2"
            assert reg["labels"] == {"app": "pricing", "version": "v2"}
            assert reg["addresses"] == {"app": "127.0.0.1:4321",
                                        "inbound": sidecar.inbound.removeprefix("http://"),
                                        "outbound": sidecar.outbound.removeprefix("http://"),
                                        "admin": sidecar.admin.removeprefix("http://")}
            # Heartbeats: the same registration again, about every second.
            await wait_for(lambda: _true(len(cp.registrations) >= 2), 5, what="a heartbeat")
            assert cp.registrations[1] == reg


async def _true(value):
    return value


def poisoned(version: str, port: int) -> dict:
    """A good snapshot plus one unusable endpoint (the review's `not-an-address`) and one unusable resource."""
    doc = snapshot(version, port, {**virtual_service("catalog"), "metadata": {"name": "broken"},
                                   "spec": {"hosts": ["catalog"], "http": [], "bogus": 1}})
    doc["services"]["catalog"]["endpoints"].append({"instance": "catalog-poison", "address": "not-an-address"})
    return doc


async def test_one_bad_entry_is_quarantined_and_a_restarted_sidecar_is_ready_within_5s(tmp_path):
    upstream, port = await catalog_upstream()
    loop = asyncio.get_running_loop()
    try:
        # The control: how long a sidecar takes to be ready on this machine, right now, with a clean snapshot.
        async with FakeControlPlane() as clean:
            await clean.publish(snapshot("s0", port))
            started = loop.time()
            async with run_sidecar(clean.url, "web", app_port=free_port(), log_dir=tmp_path):
                baseline = loop.time() - started
        async with FakeControlPlane() as cp:
            await cp.publish(poisoned("s1", port))
            # A sidecar (re)started while the poisoned entries are in every snapshot: ready in 5 s —
            # on a machine so loaded that even the clean start is slow, no slower than that (+1 s).
            started = loop.time()
            async with run_sidecar(cp.url, "web", app_port=free_port(), log_dir=tmp_path) as sidecar:
                took = loop.time() - started
                print(f"ready {took:.2f}s after start with a poisoned endpoint and resource in the snapshot "
                      f"({baseline:.2f}s with a clean one)")
                assert took < 5.0 or took < baseline + 1.0
                # The rest applied: traffic reaches the good endpoint, every time.
                for _ in range(20):
                    status, body = await get_items(sidecar.outbound)
                    assert status == 200 and body["instance"] == "catalog-fake"
                # The two bad entries were named in a NACK of that version, alone.
                [answer] = await wait_for(lambda: _true([a for a in cp.acks if a["version"] == "s1"]), 5,
                                          what="the sidecar to answer s1")
                assert "endpoint of catalog" in answer["error"] and "VirtualService broken" in answer["error"]
                dump = await sidecar.config_dump()
                assert dump["version"] == "s1" and dump["last_nack"]["error"] == answer["error"]
    finally:
        await upstream.cleanup()
