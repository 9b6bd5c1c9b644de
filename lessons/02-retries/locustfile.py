"""Load for lesson 02: shoppers who buy a lot, while payments fails 30 % of the time.

The same shoppers as in lesson 01 (shop page, product list, sometimes a
purchase), but every other visit ends at the checkout, so payments' failures
— and what retries do about them — show up in locust's numbers.

    locust -f lessons/02-retries/locustfile.py --headless -u 20 -r 5 -t 30s \\
        --host http://127.0.0.1:8080

(or leave out --headless and open http://localhost:8089). The host is always
given on the command line: nothing here knows where the gateway is.

The run is a gate: locust exits 1 when more than LOCUST_MAX_ERROR_RATIO of
all requests failed. The default, 0.02, sits between the two halves of the
lesson: with retries off (step 1) about 3 checkouts in 10 fail, which is
~6 % of all requests, and the run fails; with retries on (step 2) fewer than
1 in 1,000 do, and it passes.
"""

import logging
import os
import random
import uuid

from locust import HttpUser, between, events, task
from locust.runners import WorkerRunner

MAX_ERROR_RATIO = float(os.environ.get("LOCUST_MAX_ERROR_RATIO", "0.02"))
CHECKOUT_CHANCE = 0.5  # every other visit ends with a purchase

log = logging.getLogger("locustfile")


class Shopper(HttpUser):
    wait_time = between(0.5, 2)

    @task
    def visit(self):
        self.client.get("/", name="/ (shop page)")
        with self.client.get("/api/products", catch_response=True) as resp:
            try:
                products = resp.json()["products"]
            except (ValueError, KeyError, TypeError):
                resp.failure(f"no product list (HTTP {resp.status_code})")
                return
        if products and random.random() < CHECKOUT_CHANCE:
            self.checkout(random.sample(products, k=min(len(products), random.randint(1, 3))))

    def checkout(self, basket):
        order = {
            "order_id": str(uuid.uuid4()),  # a fresh id per purchase, as a real shop would make
            "items": [p["id"] for p in basket],
            "amount": round(sum(p["price"] or 0 for p in basket), 2),
        }
        with self.client.post("/api/checkout", json=order, catch_response=True) as resp:
            # A non-2xx answer is already a failure; a 200 must also say the order went through.
            if resp.ok:
                try:
                    paid = resp.json().get("status") == "ok"
                except ValueError:
                    paid = False
                if not paid:
                    resp.failure("checkout answered 200 but not status ok")


@events.quitting.add_listener
def gate_on_error_ratio(environment, **_):
    """Exit 1 when too many requests failed (locust alone exits 1 on any failure at all)."""
    if isinstance(environment.runner, WorkerRunner):
        return  # in a distributed run, the master holds the totals and decides
    total = environment.stats.total
    if total.num_requests == 0:
        log.error("no requests were made: is --host the gateway?")
        environment.process_exit_code = 1
    elif total.fail_ratio > MAX_ERROR_RATIO:
        log.error("error ratio %.2f%% is above the %.2f%% allowed (LOCUST_MAX_ERROR_RATIO)",
                  100 * total.fail_ratio, 100 * MAX_ERROR_RATIO)
        environment.process_exit_code = 1
    else:
        environment.process_exit_code = 0
