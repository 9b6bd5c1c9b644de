"""Slow start (loadBalancer.warmupDurationSecs) with real sidecars: a new instance's share grows.

catalog has two instances behind the gateway, which knows them as warm. A third joins; over
the 6 s warm-up window the gateway weighs it by Envoy's factor max(10 %, age / window), so its
share of requests climbs from about 8 % (factor 0.1-0.33 against two full weights) in the first
third of the window to about 31 % in the last third, and is a full third after it. Without
slow start it would get a third from its first request on.
"""

import asyncio
import json

import pytest

from tests.support.control import wait_for
from tests.support.mesh import client_session, destination_rule, run_mesh

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

    (early, n_early), (late, n_late), (after, n_after) = share(0, 1 / 3), share(2 / 3, 1), share(1.05, 1.3)
    print(f"{new.name}'s share: {early:.1%} of {n_early} in the first third, {late:.1%} of {n_late} "
          f"in the last third, {after:.1%} of {n_after} after the window")
    assert None not in {i for _, i in seen}, "a request failed"
    # Enough to tell 8 % from 31 % (a quiet 2-core box sends ~450 per third, a busy one fewer).
    assert min(n_early, n_late, n_after) >= 100, (n_early, n_late, n_after)
    # Expected ~8 %, ~31 %, 33 %: the bounds are 2.5-5 standard deviations away at 100 samples.
    assert early < 0.2, early
    assert late > 0.18 and late - early > 0.1, (early, late)
    assert 0.2 < after < 0.47, after
