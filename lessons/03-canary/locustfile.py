"""Load for lesson 03: shoppers keep shopping while pricing shifts from v1 to v2.

Each shopper opens the shop page, reads the product list, looks up the price
of one item (`Host: pricing`, straight through the gateway, as the shop's
own price widget would), and one visit in five ends at the checkout. Run it
while you walk the lesson's steps, and watch two things in locust's table:

- requests failed by the *planted bug* are marked as such: their error reads
  "planted bug: …", and price lookups for p3 have a line of their own
  (`/prices?ids=p3`) — so the bug's failures can be told from any failure a
  shift itself causes (there should be none: see the README);
- the load comes in steps (StepLoad below): USERS more every STEP seconds up
  to MAX users, held until the run's TIME is up, so you can see whether a
  shift behaves differently at 10 users and at 50.

    locust -f lessons/03-canary/locustfile.py --headless --host http://127.0.0.1:8080 \\
        --csv /tmp/canary          # writes /tmp/canary_stats.csv, _failures.csv, _stats_history.csv

The shape is set from the environment: LOCUST_STEP_USERS (10), LOCUST_STEP_TIME
(10 s), LOCUST_MAX_USERS (50), LOCUST_RUN_TIME (120 s). The host is always given
on the command line: nothing here knows where the gateway is.

The run is a gate: locust exits 1 when more than LOCUST_MAX_ERROR_RATIO
(default 0.02) of all requests failed — the planted bug's included, because
that is the point of a canary gate: at 10 % on v2 the run passes, at 100 %
it fails, and a pipeline that runs it would roll back.
"""

import math
import os
import random
import sys
import uuid
from pathlib import Path

from locust import HttpUser, LoadTestShape, between, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared gate
from shop_load import error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0.02)
STEP_USERS = int(os.environ.get("LOCUST_STEP_USERS", "10"))
STEP_TIME = float(os.environ.get("LOCUST_STEP_TIME", "10"))
MAX_USERS = int(os.environ.get("LOCUST_MAX_USERS", "50"))
RUN_TIME = float(os.environ.get("LOCUST_RUN_TIME", "120"))
CHECKOUT_CHANCE = 0.2
ITEMS = ("p1", "p2", "p3", "p4", "p5")
PLANTED_BUG = "pricing bug"  # what pricing v2 says when it fails (demo-services/pricing.py)



def judge(resp, expect_json_key=None):
    """Mark a failure as the planted bug's when the answer says so; otherwise leave locust's verdict."""
    text = resp.text or ""
    if PLANTED_BUG in text:
        resp.failure(f"planted bug: pricing v2 failed the request (HTTP {resp.status_code})")
        return None
    if expect_json_key is None:
        return None
    try:
        return resp.json()[expect_json_key]
    except (ValueError, KeyError, TypeError):
        resp.failure(f"no {expect_json_key} in the answer (HTTP {resp.status_code})")
        return None


class Shopper(HttpUser):
    wait_time = between(0.5, 1.5)

    @task
    def visit(self):
        with self.client.get("/", name="/ (shop page)", catch_response=True) as resp:
            judge(resp)
        with self.client.get("/api/products", catch_response=True) as resp:
            products = judge(resp, "products")
        item = random.choice(ITEMS)
        # p3 is the item v2 cannot always price: its lookups get a line of their own.
        name = "/prices?ids=p3" if item == "p3" else "/prices?ids=[other item]"
        with self.client.get(f"/prices?ids={item}", headers={"Host": "pricing"}, name=name,
                             catch_response=True) as resp:
            judge(resp, "prices")
        if products and random.random() < CHECKOUT_CHANCE:
            self.checkout(random.sample(products, k=min(len(products), random.randint(1, 3))))

    def checkout(self, basket):
        order = {
            "order_id": str(uuid.uuid4()),
            "items": [p["id"] for p in basket],
            "amount": round(sum(p["price"] or 0 for p in basket), 2),
        }
        with self.client.post("/api/checkout", json=order, catch_response=True) as resp:
            if resp.ok and judge(resp, "status") != "ok":
                resp.failure("checkout answered 200 but not status ok")


class StepLoad(LoadTestShape):
    """STEP_USERS more shoppers every STEP_TIME seconds, up to MAX_USERS; stop at RUN_TIME."""

    use_common_options = True  # -u/-r/-t are not an error here; -t is honoured in tick()

    def tick(self):
        elapsed = self.get_run_time()
        # Headless locust never applies --run-time to a shape, so the shape does (`minimesh load 03 -t 15s`).
        options = self.runner.environment.parsed_options
        limit = min(RUN_TIME, options.run_time) if options is not None and options.run_time else RUN_TIME
        if elapsed >= limit:
            return None
        users = min(MAX_USERS, STEP_USERS * (math.floor(elapsed / STEP_TIME) + 1))
        return users, max(1, STEP_USERS)  # (user count, spawn rate per second)

