"""Slow start (loadBalancer.warmupDurationSecs) with real sidecars: a new instance's share grows.

catalog has two instances behind the gateway, which knows them as warm. A third joins; over
the 6 s warm-up window the gateway weighs it by Envoy's factor max(10 %, age / window), so its
share of requests climbs from about 8 % (factor 0.1-0.33 against two full weights) in the first
third of the window to about 31 % in the last third, and is a full third after it. Without
slow start it would get a third from its first request on. Each share is judged against
Envoy's formula with a margin of 3.5 standard deviations for the requests the box managed
to send (a busy box sends fewer: the margin widens, the test does not fail for it).
"""

import asyncio
import json
import math

import pytest

from minimesh.proxy.outbound.ringhash import warmup_factor
from tests.support.control import wait_for
from tests.support.manifests import destination_rule
from tests.support.mesh import client_session, run_mesh

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio]

WINDOW_S = 6.0


async def test_a_new_instance_gets_a_growing_share_over_the_warmup_window(tmp_path):
    async with run_mesh(tmp_path / "home") as mesh:
        await mesh.add("catalog", replicas=2)
        await mesh.add_gateway(default_service="catalog")
        await mesh.converged()
        await mesh.apply(destination_rule("catalog", loadBalancer={"simple": "ROUND_ROBIN",
                                                                   "warmupDurationSecs": f"{WINDOW_S:g}s"}))
        async with client_session() as http:
            async def one() -> str | None:
                async with http.get(mesh.gateway.listen + "/items", headers={"Host": "catalog"}) as r:
                    return (await r.json()).get("instance") if r.status == 200 else None

            # The gateway meets catalog with its two instances: they are warm from the start.
            assert {await one() for _ in range(20)} == {i.name for i in mesh.instances}
            new = await mesh.add("catalog")

            async def gateway_knows_it():
                return new.name in json.dumps(await mesh.gateway.config_dump())
            await wait_for(gateway_knows_it, 15, what=f"the gateway to learn of {new.name}")

            # Requests 4 at a time for the window and 2 s more, each noted with when it was sent.
            loop = asyncio.get_running_loop()
            started, seen = loop.time(), []

            async def shopper():
                while (sent := loop.time() - started) < WINDOW_S + 2:
                    seen.append((sent, await one()))
            await asyncio.gather(*(shopper() for _ in range(4)))

    def share(lo: float, hi: float) -> tuple[float, int]:
        picks = [instance for t, instance in seen if lo * WINDOW_S <= t < hi * WINDOW_S]
        return picks.count(new.name) / max(1, len(picks)), len(picks)

    assert None not in {i for _, i in seen}, "a request failed"
    report = []
    for lo, hi in ((0, 1 / 3), (2 / 3, 1), (1.05, 1.3)):  # first third, last third, after the window
        got, n = share(lo, hi)
        want = expected_share(lo, hi)
        # 3.5 standard deviations of a share of n, and 0.03 for the clocks: the test's start and the
        # gateway's first sight of the instance are a few milliseconds apart.
        margin = 3.5 * math.sqrt(want * (1 - want) / max(n, 1)) + 0.03
        report.append(f"{got:.1%} of {n} (Envoy's formula: {want:.1%} ± {margin:.1%})")
        assert n >= 30, f"too few requests to judge: {report}"
        assert abs(got - want) <= margin, f"{new.name}'s share: {report}"
    print(f"{new.name}'s share in the first third, the last third, after the window: {report}")


def expected_share(lo: float, hi: float, steps: int = 1000) -> float:
    """The new instance's share beside two warm ones, averaged over [lo, hi] windows of time:
    weight max(10 %, t / window) (ringhash.warmup_factor, aggression 1) against 1 + 1."""
    total = 0.0
    for i in range(steps):
        f = warmup_factor((lo + (hi - lo) * (i + 0.5) / steps) * WINDOW_S, WINDOW_S, 10.0, 1.0)
        total += f / (f + 2)
    return total / steps
