"""Certificate rotation under load: MINIMESH_CERT_TTL=20s, two minutes of traffic, no failure.

The whole stack runs as a learner starts it (`minimesh up` of lesson 01), with
certificates that live 20 s, so every proxy renews about every 10 s (at
half-life). Meanwhile steady traffic goes through the gateway, and every hop
behind it — gateway → web → catalog, pricing — is mutual TLS. Each proxy
must show at least 5 distinct serials, and not one request may fail: new
connections take the new certificate, open ones finish on the old.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import defaultdict

import aiohttp
import pytest

from tests.support.stack import REPO, running_stack

pytestmark = pytest.mark.timeout(300)

LESSON = REPO / "lessons" / "01-hello-mesh"
DURATION = 120.0
CONCURRENCY = 4


def control_status(control_url: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(control_url + "/v1/status", timeout=5) as r:
        return json.load(r)


async def steady_traffic(gateway_url: str, until: float) -> tuple[int, list[str]]:
    """Requests to the shop's front page from CONCURRENCY loops; returns (count, failures)."""
    count, failures = 0, []

    async def loop(http):
        nonlocal count
        while time.monotonic() < until:
            try:
                async with http.get(gateway_url + "/api/products") as r:
                    await r.read()
                    if r.status != 200:
                        failures.append(f"{r.status} {r.headers.get('x-minimesh-error', '')}")
            except aiohttp.ClientError as e:
                failures.append(repr(e))
            count += 1

    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=15)) as http:
        await asyncio.gather(*(loop(http) for _ in range(CONCURRENCY)))
    return count, failures


async def watch_serials(control_url: str, until: float) -> dict[str, set[str]]:
    """Every serial each proxy reports (heartbeats carry it to the control plane), once a second."""
    serials: dict[str, set[str]] = defaultdict(set)
    while time.monotonic() < until:
        status = await asyncio.to_thread(control_status, control_url)
        for proxy in status["proxies"]:
            if proxy.get("certificate"):
                serials[proxy["node"]].add(proxy["certificate"]["serial"])
        await asyncio.sleep(1.0)
    return serials


def test_twenty_second_certificates_rotate_under_load_without_a_failed_request(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMESH_CERT_TTL", "20s")
    with running_stack(LESSON, tmp_path / "home") as stack:
        status = stack.status()
        gateway, control = status["gateway_url"], stack.admin_url()

        async def run():
            until = time.monotonic() + DURATION
            return await asyncio.gather(steady_traffic(gateway, until), watch_serials(control, until))

        (count, failures), serials = asyncio.run(run())

        # Each proxy's own view agrees with the control plane's (admin /certs keeps its past serials).
        for inst in stack.status()["instances"]:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    f"http://{inst['admin']}/certs", timeout=5) as r:
                own = json.load(r)
            assert own["identity"] == f"spiffe://cluster.local/ns/default/sa/{inst['service']}"
            serials[inst["instance"]] |= set(own["serials"])

        text = stack.cli("status").stdout
    print(f"{count} requests, {len(failures)} failed; serials per proxy: "
          + ", ".join(f"{node}={len(s)}" for node, s in sorted(serials.items())))
    print(text)
    assert count > 500, f"only {count} requests in {DURATION:.0f}s: not steady traffic"
    assert not failures, f"{len(failures)} of {count} requests failed: {failures[:5]}"
    proxies = {p["node"] for p in status.get("control", {}).get("proxies", [])} or set(serials)
    assert "gateway" in serials and len(serials) >= 4, serials.keys()
    for node in proxies:
        assert len(serials[node]) >= 5, f"{node} showed only {len(serials[node])} serials"
    assert "spiffe://cluster.local/ns/default/sa/catalog" in text and "EXPIRES IN" in text
