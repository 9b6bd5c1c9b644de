"""Load for lesson 01: shoppers browsing the toy shop through the gateway.

Each simulated shopper opens the shop page, reads the product list, and now
and then buys something — the same flow a person in a browser makes, so the
catalog instances see real concurrency (which is what LEAST_REQUEST needs).

    locust -f lessons/01-hello-mesh/locustfile.py --headless -u 20 -r 5 -t 30s \\
        --host http://127.0.0.1:8080

(or leave out --headless and open http://localhost:8089). The host is always
given on the command line: nothing here knows where the gateway is.

The run is a gate: locust exits 1 when more than LOCUST_MAX_ERROR_RATIO of
all requests failed (default 0.01 — in this lesson nothing should fail), so
a workshop script or CI can tell a healthy stack from a broken one.
"""

import logging
import os
import random
import uuid

from locust import HttpUser, between, events, task
from locust.runners import WorkerRunner

MAX_ERROR_RATIO = float(os.environ.get("LOCUST_MAX_ERROR_RATIO", "0.01"))
CHECKOUT_CHANCE = 0.2  # one visit in five ends with a purchase

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
