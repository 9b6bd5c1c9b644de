"""`minimesh stat` on lesson 02 with retries on: retries hide payments' failures, stat shows both sides.

payments fails 30 % of its requests (seeded dice, demo-services/shop.py). With
step 2's retries the shop's callers see ≥ 99 % success (EFFECTIVE), while
every attempt that reached payments succeeded only about 70 % of the time
(ACTUAL) — what Linkerd's `routes -o wide` shows as effective vs actual.
"""

import asyncio
import json

import pytest

from minimesh.lesson.steps import Send
from minimesh.lesson.traffic import send_traffic
from tests.support.stack import REPO, running_stack, wait_for

pytestmark = pytest.mark.timeout(240)
LESSON = REPO / "lessons" / "02-retries"


def test_stat_after_1000_checkouts_with_retries_shows_effective_and_actual_success(tmp_path):
    with running_stack(LESSON, tmp_path / "home") as stack:
        assert stack.cli("lesson", "step", "02", "2").returncode == 0
        traffic = asyncio.run(send_traffic(stack.status()["gateway_url"],
                                           Send(method="POST", path="/api/checkout", count=1000, concurrency=10)))
        assert traffic.success_rate >= 0.99

        def payments_row():
            r = stack.cli("stat", "--json", "--window", "300")
            assert r.returncode == 0, r.stderr
            rows = [w for w in json.loads(r.stdout)["workloads"] if w["service"] == "payments"]
            # every checkout's event has reached the control plane (sidecars send every 0.2 s)
            return rows[0] if rows and _requests_from_web(r.stdout) >= 1000 else None
        row = wait_for(payments_row, timeout=15, what="1000 checkouts' events at the control plane")
        print(json.dumps(row, indent=2))
        assert row["effective_success_rate"] >= 0.99
        assert 0.65 <= row["actual_success_rate"] <= 0.75
        assert 0.65 <= row["success_rate"] <= 0.75  # measured at payments' own inbound side
        assert row["retries"] > 200  # ~0.43 retries per checkout
        assert row["meshed"] == 2

        # The table a learner reads: the payments row says the same.
        table = stack.cli("stat", "--window", "300").stdout
        print(table)
        header, *lines = table.splitlines()
        assert header.split()[:7] == ["NAME", "VERSION", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95"]
        cells = dict(zip(header.split(), next(line for line in lines if line.startswith("payments")).split()))
        assert float(cells["EFFECTIVE"].rstrip("%")) >= 99.0
        assert 65.0 <= float(cells["ACTUAL"].rstrip("%")) <= 75.0


def _requests_from_web(stat_json: str) -> int:
    edges = json.loads(stat_json)["edges"]
    return sum(e["requests"] for e in edges
               if e["source"]["service"] == "web" and e["destination"]["service"] == "payments")
