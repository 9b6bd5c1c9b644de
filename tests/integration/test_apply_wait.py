"""`minimesh apply --wait` against a real control plane, and refused applies that change nothing.

The proxies here are played by the test over HTTP (register, watch, ACK or
NACK), so each case controls exactly who answers what and when; the real
sidecars' side is in tests/e2e (lesson 03 and the 10-sidecar convergence test).
"""

import asyncio
import json
import os
import sys

import aiohttp
import pytest

from tests.support.control import run_control_plane

pytestmark = pytest.mark.timeout(90)

VS_OK = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pricing}
spec:
  hosts: [pricing]
  http:
  - route:
    - destination: {host: pricing, subset: v1}
      weight: %d
    - destination: {host: pricing, subset: v2}
      weight: %d
"""
DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pricing}
spec:
  host: pricing
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def registration(instance):
    return {"service": "pricing", "version": "v1", "instance": instance, "kind": "sidecar",
            "addresses": {"app": None, "inbound": None, "outbound": None, "admin": "127.0.0.1:1"}}


async def run_cli(*args, control_url):
    env = {k: v for k, v in os.environ.items() if k not in ("HTTP_PROXY", "http_proxy", "MINIMESH_CONTROL_URL")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minimesh.cli", *args, "--control", control_url, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


class FakeProxy:
    """Plays one proxy: registers, watches, and ACKs (or NACKs) whatever snapshot arrives."""

    def __init__(self, http, url, node, nack=None, silent=False):
        self.http, self.url, self.node, self.nack, self.silent = http, url, node, nack, silent
        self.version = ""

    async def register(self):
        async with self.http.post(self.url + "/v1/register", json=registration(self.node)) as r:
            assert r.status == 200

    async def serve(self):
        while True:
            params = {"node": self.node, "version": self.version, "timeout": "30"}
            async with self.http.get(self.url + "/v1/watch", params=params) as r:
                if r.status != 200:
                    continue
                snap = await r.json()
            self.version = snap["version"]
            if self.silent:
                continue
            error = self.nack if self.nack and snap["config_version"] > 1 else None
            async with self.http.post(self.url + "/v1/ack", json={"node": self.node, "version": snap["version"],
                                                                   "error": error}):
                pass


@pytest.fixture
async def cp(tmp_path):
    async with run_control_plane(tmp_path / "home", ttl=30.0, warmup=0.0) as proc:
        yield proc


@pytest.fixture
async def files(tmp_path):
    (tmp_path / "dr.yaml").write_text(DR)
    (tmp_path / "vs-90.yaml").write_text(VS_OK % (90, 10))
    (tmp_path / "vs-50.yaml").write_text(VS_OK % (50, 50))
    return tmp_path


@pytest.fixture
async def proxies(cp):
    """Start named fake proxies; all of them are cancelled at the end."""
    tasks = []
    async with aiohttp.ClientSession(trust_env=False) as http:
        async def start(node, **kw):
            p = FakeProxy(http, cp.url, node, **kw)
            await p.register()
            tasks.append(asyncio.create_task(p.serve()))
            return p
        yield start
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def config_version(cp) -> int:
    code, out, err = await run_cli("get", "-o", "json", control_url=cp.url)
    assert code == 0, err
    return json.loads(out)["version"]


async def test_apply_wait_returns_once_every_proxy_acked_and_prints_the_convergence_time(cp, files, proxies):
    for node in ("web-v1-0", "pricing-v1-0", "gateway"):
        await proxies(node)
    code, out, err = await run_cli("apply", "--wait", str(files / "dr.yaml"), str(files / "vs-90.yaml"),
                                   control_url=cp.url)
    assert code == 0, err
    assert "config version 1 in force: 3/3 proxies ACKed it; converged in" in out
    async with aiohttp.ClientSession(trust_env=False) as http:
        async with http.get(cp.url + "/v1/status") as r:
            status = await r.json()
    assert {p["node"]: p["acked_config_version"] for p in status["proxies"]} == {
        "web-v1-0": 1, "pricing-v1-0": 1, "gateway": 1}


async def test_apply_wait_fails_naming_the_proxy_that_nacked(cp, files, proxies):
    await proxies("web-v1-0")
    await proxies("pricing-v2-0", nack="route regex does not compile")
    code, out, err = await run_cli("apply", "--wait", str(files / "dr.yaml"), control_url=cp.url)
    assert code == 0, err  # config 1: both ACK it (the fake refuses only later versions)
    code, out, err = await run_cli("apply", "--wait", "--timeout", "20", str(files / "vs-90.yaml"),
                                   control_url=cp.url)
    assert code == 1
    assert "config version 2 is not in force everywhere" in err
    assert "pricing-v2-0 refused it (NACK: route regex does not compile)" in err
    assert "web-v1-0" not in err


async def test_apply_wait_times_out_naming_the_silent_proxy(cp, files, proxies):
    await proxies("web-v1-0")
    await proxies("catalog-v1-0", silent=True)
    code, out, err = await run_cli("apply", "--wait", "--timeout", "1", str(files / "dr.yaml"), control_url=cp.url)
    assert code == 1
    assert "no ACK within 1s from catalog-v1-0 (runs config none)" in err
    assert "config version 1" in out  # applied, but not everywhere yet


async def test_rollout_long_poll_answers_when_the_last_ack_arrives(cp, files, proxies):
    async with aiohttp.ClientSession(trust_env=False) as http:
        async with http.post(cp.url + "/v1/register", json=registration("late")) as r:
            assert r.status == 200
        code, _, err = await run_cli("apply", str(files / "dr.yaml"), control_url=cp.url)
        assert code == 0, err
        poll = asyncio.create_task(http.get(cp.url + "/v1/rollout", params={"version": "1", "timeout": "20"}))
        await asyncio.sleep(0.3)  # the poll is held meanwhile: "late" has not ACKed
        assert not poll.done()
        async with http.get(cp.url + "/v1/watch", params={"node": "late", "version": "", "timeout": "1"}) as r:
            snap = await r.json()
        async with http.post(cp.url + "/v1/ack", json={"node": "late", "version": snap["version"], "error": None}):
            pass
        resp = await asyncio.wait_for(poll, 10)
        body = await resp.json()
        resp.release()
    assert body["converged"] and body["convergence_s"] >= 0.3
    async with aiohttp.ClientSession(trust_env=False) as http:
        async with http.get(cp.url + "/v1/rollout", params={"version": "9"}) as r:
            assert r.status == 400 and "does not exist" in (await r.json())["error"]


# --- must show 4: refused applies change nothing -----------------------------------------

UNDEFINED_SUBSET = VS_OK.replace("subset: v2", "subset: v3") % (90, 10)
NEGATIVE_WEIGHT = VS_OK % (110, -10)
VS_ALONE = VS_OK % (90, 10)


async def fifty_fifty_then_write(cp, files, tmp_path, files_to_apply) -> tuple[int, list[str]]:
    """Apply the DestinationRule and a 50/50 split; write `files_to_apply`; (config version, their paths)."""
    code, _, err = await run_cli("apply", str(files / "dr.yaml"), str(files / "vs-50.yaml"), control_url=cp.url)
    assert code == 0, err
    paths = []
    for name, text in files_to_apply:
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    return await config_version(cp), paths


@pytest.mark.parametrize("files_to_apply, warning", [
    # the DestinationRule in force defines v1 and v2 only
    ([("vs-v3.yaml", UNDEFINED_SUBSET)], "subset 'v3' of host 'pricing' is not defined"),
    # a DestinationRule in the same apply that drops a subset the route in force names
    ([("dr2.yaml", DR.replace("name: v2", "name: v2b")), ("vs-ok.yaml", VS_ALONE)],
     "subset 'v2' of host 'pricing' is not defined"),
], ids=["undefined-subset", "subset-dropped-in-the-same-apply"])
async def test_an_undefined_subset_is_applied_with_a_warning_as_on_istio(cp, files, tmp_path, files_to_apply,
                                                                         warning):
    # Istio accepts it (istioctl analyze: IST0101) and requests get 503 NC; minimesh applies and warns.
    before, paths = await fifty_fifty_then_write(cp, files, tmp_path, files_to_apply)
    code, out, err = await run_cli("apply", *paths, control_url=cp.url)
    assert code == 0, err
    assert f"warning: VirtualService default/pricing http[0].route[1]: {warning}" in err, err
    assert "503 NC" in err and "(istioctl analyze: IST0101 ReferencedResourceNotFound)" in err
    assert await config_version(cp) == before + 1


@pytest.mark.parametrize("files_to_apply, reason", [
    ([("vs-neg.yaml", NEGATIVE_WEIGHT)], "weight"),
], ids=["negative-weight"])
async def test_a_negative_weight_exits_1_and_applies_nothing(cp, files, tmp_path, files_to_apply, reason):
    before, paths = await fifty_fifty_then_write(cp, files, tmp_path, files_to_apply)
    code, out, err = await run_cli("apply", "--wait", *paths, control_url=cp.url)
    assert code == 1
    assert reason in err, err
    assert "Traceback" not in err
    assert await config_version(cp) == before
    code, out, _ = await run_cli("get", "vs", "-o", "json", control_url=cp.url)
    [vs] = json.loads(out)["resources"]
    assert [d["weight"] for d in vs["spec"]["http"][0]["route"]] == [50, 50]  # the old split stays in force
