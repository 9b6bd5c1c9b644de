"""Recorded traffic for the TUI tests: the shop's request events, as sidecars send them.

`ShopTraffic(seed)` makes the events a real stack would report for shoppers
browsing and checking out — gateway → web → catalog, pricing (an 80/20
canary between v1 and v2) and payments (failing 30 % of the time, retried) —
with trace ids, spans, attempts and flags, seeded so a run is repeatable.
`register_shop` puts the matching instances in a real control plane's
registry (with certificates), `feed` POSTs events to its /v1/telemetry.

`python -m tests.tui.shop_events` re-records tests/tui/recorded/shop.json:
the answers of a real control plane fed with this traffic, which the
snapshot tests replay so the pictures hold still.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

RECORDING = Path(__file__).parent / "recorded" / "shop.json"


def spiffe(service: str) -> str:
    """The identity a sidecar reports for a peer: what its certificate proved (every hop is mTLS here)."""
    return f"spiffe://cluster.local/ns/default/sa/{service}"

# instance -> (service, version, inbound address); nothing listens there, the registry only needs the names.
INSTANCES = {
    "gateway-0": ("gateway", "v1", None),
    "web-v1-0": ("web", "v1", "127.0.0.1:21001"),
    "catalog-v1-0": ("catalog", "v1", "127.0.0.1:21002"),
    "catalog-v1-1": ("catalog", "v1", "127.0.0.1:21003"),
    "pricing-v1-0": ("pricing", "v1", "127.0.0.1:21004"),
    "pricing-v2-0": ("pricing", "v2", "127.0.0.1:21005"),
    "payments-v1-0": ("payments", "v1", "127.0.0.1:21006"),
    "payments-v1-1": ("payments", "v1", "127.0.0.1:21007"),
}

CONFIG = [
    {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "pricing"},
     "spec": {"host": "pricing", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                             {"name": "v2", "labels": {"version": "v2"}}]}},
    {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "pricing"},
     "spec": {"hosts": ["pricing"], "http": [{"name": "canary", "route": [
         {"destination": {"host": "pricing", "subset": "v1"}, "weight": 80},
         {"destination": {"host": "pricing", "subset": "v2"}, "weight": 20}]}]}},
    {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "payments"},
     "spec": {"hosts": ["payments"], "http": [{"name": "payments-retries", "route": [
         {"destination": {"host": "payments"}}], "retries": {"attempts": 3, "retryOn": "5xx"}}]}},
]


class ShopTraffic:
    def __init__(self, seed: int = 7, failure_rate: float = 0.3):
        self.rng = random.Random(seed)
        self.failure_rate = failure_rate

    def _id(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def _event(self, reporter, instance, start, ms, status, trace_id, span_id, parent_id, **more) -> dict:
        service, version, _ = INSTANCES[instance]
        return {"reporter": reporter, "service": service, "version": version, "instance": instance,
                "status": status, "duration_ms": round(ms, 3), "start": start, "trace_id": trace_id,
                "span_id": span_id, "parent_id": parent_id, "flags": [], "tries": [], "mtls": True, **more}

    def _call(self, caller: str, callee_service: str, start: float, trace_id: str, parent_id: str, path: str,
              method: str = "GET", route: str | None = None, subset: str | None = None,
              fail: float = 0.0, tries: int = 1) -> tuple[list[dict], int, float]:
        """One outbound call with its attempts, and the callee's inbound events: (events, status, ms)."""
        span = self._id(64)
        candidates = [i for i, (s, v, _) in INSTANCES.items() if s == callee_service and (subset is None or v == subset)]
        events, attempts, offset = [], [], 0.0
        status = 503
        for _ in range(tries):
            target = self.rng.choice(candidates)
            status = 503 if self.rng.random() < fail else 200
            ms = self.rng.uniform(2, 12) if status == 200 else self.rng.uniform(1, 3)
            caller_service, caller_version, _ = INSTANCES[caller]
            events.append(self._event("inbound", target, start + offset / 1000, ms, status, trace_id, self._id(64),
                                      span, peer=f"{caller_service};{caller_version};{caller}", method=method,
                                      authority=callee_service, path=path, identity=spiffe(caller_service)))
            attempts.append([INSTANCES[target][2], status, None, round(offset, 3), round(ms, 3)])
            offset += ms + 0.5
            if status == 200:
                break
        flags = ["URX"] if status != 200 and tries > 1 else []
        reporter = "gateway" if caller.startswith("gateway") else "outbound"
        events.insert(0, self._event(reporter, caller, start, offset, status, trace_id, span, parent_id,
                                     destination=callee_service, route=route, subset=subset, method=method,
                                     authority=callee_service, path=path, endpoint=attempts[-1][0],
                                     tries=attempts, flags=flags, identity=spiffe(callee_service)))
        return events, status, offset

    def shopper(self, start: float, checkout: bool | None = None) -> list[dict]:
        """One page view or checkout (None: 40 % of shoppers check out), every hop of it."""
        trace_id = self._id(128)
        gateway_span = self._id(64)
        drawn = self.rng.random() < 0.4
        checkout = drawn if checkout is None else checkout
        inner: list[dict] = []
        if checkout:
            found, status, ms = self._call("web-v1-0", "payments", start + 0.001, trace_id, None, "/pay", "POST",
                                           route="payments-retries", fail=self.failure_rate, tries=3)
            inner, web_status, web_ms = found, (200 if status == 200 else 502), ms + 1
        else:
            a, _, ms_a = self._call("web-v1-0", "catalog", start + 0.001, trace_id, None, "/items")
            subset = "v2" if self.rng.random() < 0.2 else "v1"
            b, _, ms_b = self._call("web-v1-0", "pricing", start + 0.001, trace_id, None, "/prices?ids=1,2",
                                    route="canary", subset=subset)
            inner, web_status, web_ms = a + b, 200, max(ms_a, ms_b) + 1
        path, method = ("/api/checkout", "POST") if checkout else ("/api/products", "GET")
        web_span = self._id(64)
        for e in inner:  # web's outbound calls are children of web's server span
            if e["reporter"] == "outbound":
                e["parent_id"] = web_span
        web_in = self._event("inbound", "web-v1-0", start, web_ms, web_status, trace_id, web_span, gateway_span,
                             peer="gateway;v1;gateway-0", method=method, authority="web", path=path,
                             identity=spiffe("gateway"))
        gateway = self._event("gateway", "gateway-0", start, web_ms + 0.5, web_status, trace_id, gateway_span, None,
                              destination="web", route=None, method=method, authority="web", path=path,
                              endpoint=INSTANCES["web-v1-0"][2],
                              tries=[[INSTANCES["web-v1-0"][2], web_status, None, 0.0, web_ms]],
                              identity=spiffe("web"))
        return [gateway, web_in, *inner]

    def batch(self, shoppers: int, now: float | None = None) -> list[dict]:
        now = time.time() if now is None else now
        return [e for i in range(shoppers) for e in self.shopper(now - 0.5 + i * 0.001)]


def registration(instance: str, now: float) -> dict:
    service, version, inbound = INSTANCES[instance]
    kind = "gateway" if service == "gateway" else "sidecar"
    body = {"service": service, "version": version, "instance": instance, "kind": kind, "labels": {},
            "addresses": {"app": None, "inbound": inbound, "outbound": None, "admin": "127.0.0.1:1"}}
    if kind == "sidecar":
        spiffe = f"spiffe://cluster.local/ns/default/sa/{service}"
        body["identity"] = spiffe
        body["certificate"] = {"spiffe_id": spiffe, "serial": "1", "not_before": now - 3600,
                               "not_after": now + 23 * 3600, "expires_in_s": 23 * 3600}
    return body


async def register_shop(url: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    async with aiohttp.ClientSession(trust_env=False) as http:
        for instance in INSTANCES:
            async with http.post(f"{url}/v1/register", json=registration(instance, now)) as resp:
                assert resp.status == 200, await resp.text()
        async with http.post(f"{url}/v1/config", json={"manifests": CONFIG, "source": "shop"}) as resp:
            assert resp.status == 200, await resp.text()
        for instance in INSTANCES:  # every proxy takes the snapshot and ACKs it, as a sidecar would
            async with http.get(f"{url}/v1/watch", params={"node": instance, "version": "", "timeout": "5"}) as resp:
                snapshot = await resp.json()
            async with http.post(f"{url}/v1/ack", json={"node": instance, "version": snapshot["version"],
                                                        "error": None}) as resp:
                assert resp.status == 200, await resp.text()


async def feed(url: str, events: list[dict], http: aiohttp.ClientSession | None = None) -> int:
    own = http is None
    http = http or aiohttp.ClientSession(trust_env=False)
    try:
        async with http.post(f"{url}/v1/telemetry", json={"node": "recorded", "events": events}) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["accepted"]
    finally:
        if own:
            await http.close()


async def record(path: Path = RECORDING, frames: int = 12) -> None:
    """Feed a real control plane and keep its answers, frame by frame, for RecordedTransport."""
    from tests.support.control import run_control_plane

    answers: dict[str, list] = {}

    async def get(http, url, path_q, key=None):
        async with http.get(url + path_q) as resp:
            doc = await resp.json()
        answers.setdefault(key or path_q, []).append(doc)
        return doc

    traffic = ShopTraffic(seed=7)
    with tempfile.TemporaryDirectory() as home:
        async with run_control_plane(home, ttl=600) as cp, aiohttp.ClientSession(trust_env=False) as http:
            await register_shop(cp.url)
            for frame in range(frames):
                # A swell and a lull, so the sparklines have a shape.
                await feed(cp.url, traffic.batch(6 + 4 * (frame % 6)), http)
                await get(http, cp.url, "/v1/stat?window=30")
                await get(http, cp.url, "/v1/stat?window=5")
                await get(http, cp.url, "/v1/status", "/v1/status")
                if frame % 2 == 0:
                    await get(http, cp.url, "/v1/config", "/v1/config")
                if frame % 5 == 0:
                    await get(http, cp.url, "/v1/instances", "/v1/instances")
            mark = (await (await http.get(cp.url + "/v1/tap?timeout=0")).json())["next"]
            # Under the tap view's draw budget (no sampling), with checkouts that were retried.
            retried: list[dict] = []
            while not any(len(e["tries"]) > 1 for e in retried if e["reporter"] == "outbound"):
                retried = traffic.shopper(time.time(), checkout=True)
            await feed(cp.url, traffic.batch(4) + retried, http)
            tap = await get(http, cp.url, f"/v1/tap?since={mark}&timeout=0", "/v1/tap")
            slowest = await get(http, cp.url, "/v1/traces?sort=slowest&limit=1", "/v1/traces")
            for trace_id in {e["trace_id"] for e in tap["events"]} | {t["trace_id"] for t in slowest["traces"]}:
                await get(http, cp.url, f"/v1/traces/{trace_id}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"recorded_at": time.time(), "answers": answers}, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    asyncio.run(record(Path(sys.argv[1]) if len(sys.argv) > 1 else RECORDING))
    print(f"recorded {RECORDING}")
