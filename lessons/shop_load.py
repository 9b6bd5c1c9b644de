"""What every lesson's locustfile shares: a shopper of the toy shop, and the gate.

A locustfile puts lessons/ on its import path and takes what it needs:

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from shop_load import ShopVisitor, error_ratio_gate

`ShopVisitor` opens the shop page, reads the product list and now and then
buys something — what a person in a browser does, so the services behind the
gateway see real concurrency. `error_ratio_gate` makes the run a gate: locust
exits 1 when more than LOCUST_MAX_ERROR_RATIO of all requests failed, so a
workshop script or CI can tell a healthy stack from a broken one.
"""

import logging
import os
import random
import uuid

from locust import HttpUser, events, task
from locust.runners import WorkerRunner

log = logging.getLogger("locustfile")


class ShopVisitor(HttpUser):
    """A shopper's visit; a lesson's subclass sets wait_time and checkout_chance."""

    abstract = True
    checkout_chance = 0.2

    @task
    def visit(self):
        self.client.get("/", name="/ (shop page)")
        with self.client.get("/api/products", catch_response=True) as resp:
            try:
                products = resp.json()["products"]
            except (ValueError, KeyError, TypeError):
                # The mesh says why when it answered itself (x-minimesh-error).
                resp.failure(f"no product list (HTTP {resp.status_code}, "
                             f"{resp.headers.get('x-minimesh-error', 'no mesh error')})")
                return
            if any(p.get("price") is None for p in products):
                resp.failure("a product has no price")
                return
        if products and random.random() < self.checkout_chance:
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


def error_ratio_gate(default: float) -> float:
    """Exit 1 at the end when too many requests failed; returns the ratio allowed.

    The limit is LOCUST_MAX_ERROR_RATIO, else `default`. Locust alone exits 1
    on any failure at all, which no lesson with planted faults could pass.
    """
    max_ratio = float(os.environ.get("LOCUST_MAX_ERROR_RATIO", default))

    @events.quitting.add_listener
    def gate_on_error_ratio(environment, **_):
        if isinstance(environment.runner, WorkerRunner):
            return  # in a distributed run, the master holds the totals and decides
        total = environment.stats.total
        if total.num_requests == 0:
            log.error("no requests were made: is --host the gateway?")
            environment.process_exit_code = 1
        elif total.fail_ratio > max_ratio:
            log.error("error ratio %.2f%% is above the %.2f%% allowed (LOCUST_MAX_ERROR_RATIO)",
                      100 * total.fail_ratio, 100 * max_ratio)
            environment.process_exit_code = 1
        else:
            environment.process_exit_code = 0

    return max_ratio
