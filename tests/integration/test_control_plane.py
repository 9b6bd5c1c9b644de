"""The control plane as a real process: registry, watch, ACKs, config apply, restarts, bad input.

Each test starts `minimesh control --port 0` in a fresh home (tests/support/control.py)
and speaks to it over real HTTP, the way sidecars and the CLI do.
"""

import asyncio
import json
import socket
import subprocess
import time

import aiohttp
import pytest

from tests.support.control import control_plane_at, minimesh_command, run_control_plane

pytestmark = pytest.mark.timeout(60)


def vs(subset="v1", name="pricing"):
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": name},
            "spec": {"hosts": ["pricing"], "http": [{"route": [
                {"destination": {"host": "pricing", "subset": subset}, "weight": 100}]}]}}


def dr(*subsets):
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "pricing"},
            "spec": {"host": "pricing", "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}}


def registration(instance="pricing-v1-0", service="pricing", inbound="127.0.0.1:17006"):
    return {"service": service, "version": "v1", "instance": instance, "kind": "sidecar", "labels": {},
            "addresses": {"app": "127.0.0.1:17000", "inbound": inbound, "outbound": "127.0.0.1:17001",
                          "admin": "127.0.0.1:17002"}}


class Api:
    """A tiny client: every call returns (status, json-or-None)."""

    def __init__(self, session: aiohttp.ClientSession, url: str):
        self.session, self.url = session, url

    async def call(self, method, path, body=None, data=None, **params):
        async with self.session.request(method, self.url + path, json=body, data=data, params=params) as r:
            payload = await r.json() if r.status != 204 else None
            return r.status, payload

    async def get(self, path, **params):
        return await self.call("GET", path, **params)

    async def post(self, path, body):
        return await self.call("POST", path, body)

    async def watch(self, version, timeout=1, node="n1"):
        return await self.get("/v1/watch", node=node, version=version, timeout=str(timeout))


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


@pytest.fixture
async def cp(tmp_path):
    async with run_control_plane(tmp_path / "home", ttl=10.0, warmup=0.0) as proc:
        yield proc


@pytest.fixture
def api(cp, session):
    return Api(session, cp.url)


async def test_register_heartbeat_and_graceful_leave(api):
    # A sidecar registers; labels gain app= and version=; the answer tells it the TTL.
    assert await api.post("/v1/register", registration()) == (200, {"ttl": 10.0})
    status, body = await api.get("/v1/instances")
    [inst] = body["instances"]
    assert inst["instance"] == "pricing-v1-0" and inst["labels"] == {"app": "pricing", "version": "v1"}
    assert inst["acked_version"] is None and inst["nack_error"] is None
    # A heartbeat is the same call; it changes nothing watchers see.
    _, snap = await api.watch("")
    assert (await api.post("/v1/register", registration()))[0] == 200
    assert await api.watch(snap["version"], timeout=0.3) == (204, None)
    # Leaving: 200 once, 404 after.
    assert (await api.call("DELETE", "/v1/instances/pricing-v1-0"))[0] == 200
    assert (await api.call("DELETE", "/v1/instances/pricing-v1-0"))[0] == 404
    assert (await api.get("/v1/instances"))[1] == {"instances": []}


async def test_silent_instance_really_expires(tmp_path, session):
    async with run_control_plane(tmp_path / "home", ttl=0.6) as cp:
        api = Api(session, cp.url)
        await api.post("/v1/register", registration("quiet"))
        # Heartbeat "loud" for longer than the TTL: it must survive while "quiet" goes.
        deadline = time.monotonic() + 10

        async def quiet_gone():
            await api.post("/v1/register", registration("loud"))
            _, body = await api.get("/v1/instances")
            return [i["instance"] for i in body["instances"]] == ["loud"]

        while not await quiet_gone():
            assert time.monotonic() < deadline, "quiet instance never expired"
            await asyncio.sleep(0.1)
        assert "expired quiet" in cp.logs()


async def test_watch_answers_at_once_then_long_polls_and_wakes_on_apply_and_register(api):
    # An empty version gets the snapshot at once.
    status, snap = await api.watch("", timeout=10)
    assert status == 200 and snap["config_version"] == 0 and snap["services"] == {}
    # So does any version that is not the current one.
    assert (await api.watch("stale", timeout=10))[1]["version"] == snap["version"]

    # With the current version the watch waits; an apply wakes it with the new config.
    waiting = asyncio.create_task(api.watch(snap["version"], timeout=20))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    assert (await api.post("/v1/config", {"manifests": [dr("v1")], "source": "dr.yaml"}))[0] == 200
    status, after_apply = await asyncio.wait_for(waiting, 10)
    assert status == 200 and after_apply["config_version"] == 1
    assert after_apply["version"] != snap["version"]
    assert [r["kind"] for r in after_apply["resources"]] == ["DestinationRule"]

    # A registration wakes it too, and the new instance is an endpoint.
    waiting = asyncio.create_task(api.watch(after_apply["version"], timeout=20))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await api.post("/v1/register", registration())
    status, after_register = await asyncio.wait_for(waiting, 10)
    assert after_register["services"]["pricing"]["endpoints"] == [
        {"instance": "pricing-v1-0", "address": "127.0.0.1:17006", "labels": {"app": "pricing", "version": "v1"}}]


async def test_watch_times_out_with_204(api):
    _, snap = await api.watch("")
    started = time.monotonic()
    assert await api.watch(snap["version"], timeout=1) == (204, None)
    assert time.monotonic() - started >= 0.9


async def test_ack_and_nack_show_in_status(api):
    await api.post("/v1/register", registration("a"))
    await api.post("/v1/register", registration("b"))
    _, snap = await api.watch("")
    v = snap["version"]
    assert (await api.post("/v1/ack", {"node": "a", "version": v, "error": None}))[0] == 200
    assert (await api.post("/v1/ack", {"node": "b", "version": v, "error": "regex does not compile"}))[0] == 200
    _, status = await api.get("/v1/status")
    assert status["snapshot_version"] == v and status["config_version"] == 0
    by_node = {p["node"]: p for p in status["proxies"]}
    assert by_node["a"]["acked_version"] == v and by_node["a"]["nacked_version"] is None
    assert by_node["b"]["nacked_version"] == v and by_node["b"]["nack_error"] == "regex does not compile"
    _, body = await api.get("/v1/instances")
    assert {i["instance"]: i["nack_error"] for i in body["instances"]} == {"a": None, "b": "regex does not compile"}


async def test_apply_bumps_version_once_and_unchanged_keeps_it(api):
    status, body = await api.post("/v1/config", {"manifests": [dr("v1", "v2"), vs("v1")], "source": "a.yaml"})
    assert status == 200 and body["version"] == 1
    assert sorted((r["kind"], r["action"]) for r in body["results"]) == [
        ("DestinationRule", "created"), ("VirtualService", "created")]
    # The same file again: nothing changed, the version stays.
    status, body = await api.post("/v1/config",
                                  {"manifests": [dr("v1", "v2"), vs("v1")], "source": "a.yaml"})
    assert body["version"] == 1 and {r["action"] for r in body["results"]} == {"unchanged"}
    # One changed manifest: one bump, "configured".
    status, body = await api.post("/v1/config", {"manifests": [vs("v2")], "source": "b.yaml"})
    assert body == {"version": 2, "results": [{"kind": "VirtualService", "name": "pricing", "action": "configured"}],
                    "warnings": []}
    _, got = await api.get("/v1/config", kind="VirtualService")
    assert got == {"version": 2, "resources": [vs("v2")]}
    # Delete: bump, then 404.
    assert await api.call("DELETE", "/v1/config/VirtualService/pricing") == (200, {"version": 3})
    assert (await api.call("DELETE", "/v1/config/VirtualService/pricing"))[0] == 404


@pytest.mark.parametrize("manifests", [
    pytest.param([dr("v1"), {**vs(), "spec": {**vs()["spec"], "tcp": []}}], id="field-outside-subset"),
    pytest.param([dr("v1"), {**vs(), "kind": "EnvoyFilter"}], id="unsupported-kind"),
    pytest.param([{"kind": "VirtualService"}], id="no-metadata"),
    pytest.param("not a list", id="manifests-not-a-list"),
])
async def test_invalid_apply_is_400_and_changes_nothing(api, manifests):
    assert (await api.post("/v1/config", {"manifests": [dr("v1"), vs("v1")], "source": "good.yaml"}))[0] == 200
    _, before = await api.get("/v1/config")
    status, body = await api.post("/v1/config", {"manifests": manifests, "source": "bad.yaml"})
    assert status == 400 and "\n" not in body["error"] and body["error"]
    assert (await api.get("/v1/config"))[1] == before


async def test_restart_after_sigkill_keeps_config_and_renews_snapshot_version(api, cp, session):
    await api.post("/v1/config", {"manifests": [dr("v1")], "source": "dr.yaml"})
    await api.post("/v1/config", {"manifests": [vs("v1")], "source": "vs.yaml"})
    _, config_before = await api.get("/v1/config")
    _, snap_before = await api.watch("")
    cp.kill()
    await cp.restart()
    api = Api(session, cp.url)
    assert (await api.get("/v1/config"))[1] == config_before
    _, snap_after = await api.watch("")
    assert snap_after["config_version"] == 2
    # Same config, same (empty) registry generation — yet a new version: a fresh epoch.
    assert snap_after["version"] != snap_before["version"]


async def test_warmup_holds_a_node_that_has_a_version(tmp_path, session):
    async with run_control_plane(tmp_path / "home", warmup=4.0) as cp:
        api = Api(session, cp.url)
        # A fresh sidecar (no version) is answered at once...
        status, snap = await api.watch("", timeout=5)
        assert status == 200
        # ...one that holds an old version waits, although the version differs.
        assert await api.watch("stale-from-before-restart", timeout=0.5) == (204, None)
        # When the warm-up ends, the held watch is answered.
        status, held = await api.watch("stale-from-before-restart", timeout=10)
        assert status == 200 and held["version"] == snap["version"]


async def test_malformed_json_and_unknown_route_answer_json_errors(api, session):
    status, body = await api.call("POST", "/v1/register", data=b"{not json")
    assert status == 400 and body["error"].startswith("request body is not valid JSON")
    status, body = await api.get("/v1/nothing-here")
    assert status == 404 and "/v1/nothing-here" in body["error"]
    status, body = await api.post("/v1/register", {"service": "x"})
    assert status == 400 and "version" in body["error"]
    status, body = await api.get("/v1/watch", version="")
    assert status == 400 and "node" in body["error"]


async def test_persisted_config_is_valid_json_after_many_applies(api, cp):
    for i in range(25):
        status, body = await api.post("/v1/config", {"manifests": [dr(*[f"v{j}" for j in range(i + 1)])]})
        assert status == 200
    saved = json.loads((cp.home / "control" / "config.json").read_text())
    assert saved["version"] == 25 == body["version"]
    assert saved["resources"] == [dr(*[f"v{j}" for j in range(25)])]
    assert not [p for p in (cp.home / "control").iterdir() if p.name.endswith(".tmp")]


def test_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = subprocess.run([*minimesh_command(), "control", "--port", str(port), "--home", str(tmp_path)],
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"minimesh: port {port} is already in use (control plane); stop whatever holds it or pass --port 0"]


async def test_a_route_to_an_undefined_subset_is_applied_with_a_warning_as_on_istio(api):
    # Istio accepts it (istioctl analyze says IST0101) and the requests get 503 NC at run time.
    status, body = await api.post("/v1/config", {"manifests": [dr("v1"), vs("v9")], "source": "shop.yaml"})
    assert status == 200 and body["version"] == 1
    assert any("IST0101" in w and "v9" in w for w in body["warnings"]), body["warnings"]


async def test_deleting_a_rule_a_route_still_names_is_allowed_as_on_istio(api):
    # The VirtualService routes to subset v1, which only the DestinationRule defines: Istio lets the
    # rule go (the route's requests get 503 NC), so minimesh does too, and a later apply warns.
    await api.post("/v1/config", {"manifests": [dr("v1"), vs("v1")], "source": "shop.yaml"})
    assert (await api.call("DELETE", "/v1/config/DestinationRule/pricing")) == (200, {"version": 2})
    status, body = await api.post("/v1/config", {"manifests": [vs("v1")], "source": "shop.yaml"})
    assert status == 200 and any("IST0101" in w for w in body["warnings"]), body


async def test_sigterm_stops_cleanly(cp):
    cp.proc.terminate()
    assert cp.proc.wait(timeout=10) == 0
    assert "control plane stopping" in cp.logs()


async def test_a_stopped_control_plane_is_forgotten_by_the_test_builders(tmp_path):
    """The builders hand a sidecar the token and HTTPS address of the control plane at its --control URL.
    Once that control plane stops, its ports go back to the machine; a later server on one of them
    (test_sidecar_nack's fake) must not be taken for it — CI once gave a sidecar a dead plane's address."""
    async with run_control_plane(tmp_path / "home") as cp:
        urls = (cp.url, cp.https_url)
        assert all(control_plane_at(url) is cp for url in urls)
    assert [control_plane_at(url) for url in urls] == [None, None]
