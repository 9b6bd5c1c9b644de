"""Resilience as a learner sees it through the gateway: retries, load balancing, timeouts,
a control plane that crashes, and a sidecar that stops gracefully.

One mesh for the module (starting a dozen processes takes seconds): web, payments
(FAILURE_RATE=0.3, seeded), three catalog instances and the gateway. Each test
applies the config it needs and the `clean` fixture removes it afterwards. The
last two tests change the topology (a sidecar stops; the control plane restarts),
so they run last.
"""

import asyncio
import time

import pytest
import pytest_asyncio

from tests.support.control import wait_for
from tests.support.manifests import delete_routing, destination_rule, virtual_service
from tests.support.mesh import client_session, run_mesh, set_fault

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    # A fixed control-plane port, so sidecars find it again after a restart; Istio-like warm-up.
    async with run_mesh(tmp_path_factory.mktemp("resilience") / "home", warmup=2.0, fixed_port=True) as mesh:
        await mesh.add("web")
        await mesh.add("payments", env={"FAILURE_RATE": "0.3", "SEED": "7"})
        await mesh.add("catalog", replicas=3)
        await mesh.add_gateway(default_service="web")
        await mesh.converged()
        yield mesh


@pytest_asyncio.fixture(loop_scope="module")
async def clean(mesh):
    """After each test: no VirtualService or DestinationRule left, catalog faults off."""
    yield mesh
    await delete_routing(mesh)
    for instance in catalogs(mesh):
        await set_fault(instance, delay_ms=0)
    await mesh.converged()


def catalogs(mesh):
    return [i for i in mesh.instances if i.service == "catalog" and i.sidecar.proc.poll() is None]


async def fire(mesh, n, method="GET", path="/items", host="catalog.default.svc.cluster.local", concurrency=1):
    """Send n requests through the gateway; returns [(status, body json or None, headers)]."""
    sem = asyncio.Semaphore(concurrency)
    async with client_session() as http:
        async def one(_):
            async with sem, http.request(method, mesh.gateway.listen + path, headers={"Host": host}) as r:
                body = await r.json(content_type=None) if r.content_type == "application/json" else None
                return r.status, body, r.headers
        if concurrency == 1:
            return [await one(i) for i in range(n)]
        return await asyncio.gather(*(one(i) for i in range(n)))


# --- retries -------------------------------------------------------------------------------


async def test_retries_hide_a_flaky_upstream(clean):
    mesh = clean
    # payments answers 503 three times in ten. Five retries on 5xx make checkout almost always work.
    await mesh.apply(virtual_service("payments", retries={"attempts": 5, "retryOn": "5xx"}))
    results = await fire(mesh, 300, "POST", "/api/checkout", host="shop.example.com", concurrency=10)
    ok = sum(1 for status, *_ in results if status == 200)
    assert ok >= 297, f"{ok}/300 checkouts succeeded with 5 retries: {results[:3]}"
    # The retries are visible in web's outbound stats: more attempts than requests.
    web = mesh.instances[0].sidecar
    attempts = sum(a["count"] for a in (await web.stats())["attempts"] if a["service"] == "payments")
    assert attempts > 330

    # With retries off, about 30 % fail (seeded dice; a wide band that only a broken mesh misses).
    await mesh.apply(virtual_service("payments", retries={"attempts": 0}))
    results = await fire(mesh, 300, "POST", "/api/checkout", host="shop.example.com", concurrency=10)
    ok = sum(1 for status, *_ in results if status == 200)
    assert 0.58 <= ok / 300 <= 0.82, f"{ok}/300 checkouts succeeded without retries"
    assert {status for status, *_ in results} <= {200, 502}  # web reports its upstream's failure as 502


# --- load balancing ------------------------------------------------------------------------


def served_by(results):
    counts = {}
    for status, body, _ in results:
        assert status == 200, body
        counts[body["instance"]] = counts.get(body["instance"], 0) + 1
    return counts


async def test_round_robin_spreads_evenly(clean):
    mesh = clean
    await mesh.apply(destination_rule("catalog", lb="ROUND_ROBIN"))
    counts = served_by(await fire(mesh, 300))
    assert sorted(counts) == sorted(i.name for i in catalogs(mesh))
    assert all(90 <= n <= 110 for n in counts.values()), counts


async def test_least_request_starves_a_slow_instance(clean):
    mesh = clean
    slow = catalogs(mesh)[0]
    await set_fault(slow, delay_ms=200)
    await mesh.apply(destination_rule("catalog", lb="LEAST_REQUEST"))
    counts = served_by(await fire(mesh, 300, concurrency=10))
    assert counts.get(slow.name, 0) < 0.15 * 300, counts


# --- timeouts ------------------------------------------------------------------------------


async def test_route_timeout_gives_504_ut(clean):
    mesh = clean
    for instance in catalogs(mesh):
        await set_fault(instance, delay_ms=1000)
    await mesh.apply(virtual_service("catalog", timeout="0.2s"))
    started = time.monotonic()
    [(status, _, headers)] = await fire(mesh, 1)
    assert status == 504
    assert headers["x-minimesh-error"].startswith("UT (timeout, gateway)"), headers["x-minimesh-error"]
    assert time.monotonic() - started < 0.9  # the gateway gave up; it did not wait for the upstream


async def test_per_try_timeout_retries_onto_a_fast_instance(clean):
    mesh = clean
    slow = catalogs(mesh)[0]
    await set_fault(slow, delay_ms=1000)
    await mesh.apply(virtual_service("catalog", retries={"attempts": 2, "perTryTimeout": "0.25s",
                                                         "retryOn": "5xx"}))
    results = await fire(mesh, 20)
    assert {status for status, *_ in results} == {200}
    assert slow.name not in served_by(results)
    # Some requests did try the slow instance first and were retried after its per-try timeout.
    lines = [line for line in mesh.gateway.access_log()[-20:] if line["destination"] == "catalog"]
    assert any(line["attempts"] == 2 for line in lines), lines


# --- bad config ----------------------------------------------------------------------------


async def test_invalid_manifest_is_refused_and_nothing_changes(clean):
    mesh = clean
    version = await mesh.apply(destination_rule("catalog", lb="RANDOM"))
    bad = virtual_service("catalog", retries={"attempts": 2, "retryOnce": "5xx"})
    status, body = await mesh.cp("POST", "/v1/config", {"manifests": [bad], "source": "bad.yaml"})
    assert status == 400 and "retryOnce" in body["error"]
    status, config = await mesh.cp("GET", "/v1/config")
    assert config["version"] == version
    assert [r["kind"] for r in config["resources"] if r["metadata"]["name"] != "ingress"] == ["DestinationRule"]
    assert all(not p["nack_error"] for p in (await mesh.cp("GET", "/v1/status"))[1]["proxies"])


# --- topology changes (run last) ---------------------------------------------------------------


class Traffic:
    """A background loop of requests through the gateway, for as long as a test runs."""

    def __init__(self, mesh, host="catalog.default.svc.cluster.local", path="/items"):
        self.mesh, self.host, self.path = mesh, host, path
        self.results: list[tuple[float, int, str]] = []  # (time, status, x-minimesh-error)
        self._stop = asyncio.Event()
        self._task = None

    async def _run(self):
        async with client_session() as http:
            while not self._stop.is_set():
                try:
                    async with http.get(self.mesh.gateway.listen + self.path, headers={"Host": self.host}) as r:
                        await r.read()
                        self.results.append((time.monotonic(), r.status, r.headers.get("x-minimesh-error", "")))
                except Exception as e:  # noqa: BLE001 - a failure to count, not to hide
                    self.results.append((time.monotonic(), 0, repr(e)))
                await asyncio.sleep(0.005)  # pacing, not synchronisation

    def __enter__(self):
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self):
        self._stop.set()
        await self._task

    def __exit__(self, *exc):
        self._stop.set()

    def failures(self, since=0.0):
        return [r for r in self.results if r[0] >= since and r[1] != 200]

    async def wait_count(self, n):
        start = len(self.results)
        await wait_for(lambda: _true(len(self.results) >= start + n), 15, what=f"{n} more requests")


async def _true(value):
    return value


async def test_graceful_stop_loses_no_request(clean):
    mesh = clean
    leaving = catalogs(mesh)[-1]
    with Traffic(mesh) as traffic:
        await traffic.wait_count(30)
        # SIGTERM: the sidecar leaves the registry, waits for callers to notice, then closes.
        assert await leaving.sidecar.stop() == 0
        await traffic.wait_count(50)
        await traffic.stop()
    assert traffic.failures() == []
    status, body = await mesh.cp("GET", "/v1/instances")
    assert leaving.name not in {i["instance"] for i in body["instances"]}
    later = [line for line in mesh.gateway.access_log() if line["destination"] == "catalog"][-20:]
    assert all(line["upstream_instance"] != leaving.name for line in later)


async def test_control_plane_crash_does_not_touch_traffic(clean):
    mesh = clean
    version = await mesh.apply(destination_rule("catalog", lb="ROUND_ROBIN"))
    with Traffic(mesh) as traffic:
        await traffic.wait_count(20)
        mesh.control.kill()  # SIGKILL: a crash
        down_since = time.monotonic()
        await wait_for(lambda: _true("unreachable" in mesh.gateway.logs()), 10,
                       what="the gateway to notice the control plane is gone")
        await traffic.wait_count(50)  # traffic while it is down
        served_while_down = len([r for r in traffic.results if r[0] >= down_since])
        await mesh.control.start()  # same home, same port
        restarted = time.monotonic()

        # Every live proxy registers again within 5 s of the restart.
        wanted = {p.instance for p in mesh.proxies()}

        async def reregistered():
            status, body = await mesh.cp("GET", "/v1/instances")
            return status == 200 and wanted <= {i["instance"] for i in body["instances"]}
        await wait_for(reregistered, 5, what=f"{sorted(wanted)} to re-register")
        assert time.monotonic() - restarted < 5
        await mesh.converged()
        await traffic.wait_count(20)
        await traffic.stop()

    assert served_while_down >= 50
    assert traffic.failures() == [], traffic.failures()[:5]
    # The restarted control plane has the config it had before the crash.
    status, config = await mesh.cp("GET", "/v1/config")
    assert config["version"] == version
    assert [(r["kind"], r["metadata"]["name"]) for r in config["resources"]
            if r["metadata"]["name"] != "ingress"] == [("DestinationRule", "catalog")]
