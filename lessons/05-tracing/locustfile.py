"""Load for lesson 05: shoppers browsing the product list, so there are traces to look at.

Every visit loads the shop page and the product list — the request whose
trace has the planted staircase of pricing calls. Run it, then ask for the
slowest recent trace with `minimesh trace`:

    locust -f lessons/05-tracing/locustfile.py --headless -u 10 -r 5 -t 30s \\
        --host http://127.0.0.1:8080

(or leave out --headless and open http://localhost:8089). The host is always
given on the command line: nothing here knows where the gateway is.

The run is a gate: locust exits 1 when more than LOCUST_MAX_ERROR_RATIO
(default 0.01) of all requests failed — the shop itself is healthy in this
lesson, only slow.
"""

import logging
import os

from locust import HttpUser, between, events, task
from locust.runners import WorkerRunner

MAX_ERROR_RATIO = float(os.environ.get("LOCUST_MAX_ERROR_RATIO", "0.01"))

log = logging.getLogger("locustfile")


class Shopper(HttpUser):
    wait_time = between(0.5, 2)

    @task
    def browse(self):
        self.client.get("/", name="/ (shop page)")
        with self.client.get("/api/products", catch_response=True) as resp:
            try:
                products = resp.json()["products"]
            except (ValueError, KeyError, TypeError):
                resp.failure(f"no product list (HTTP {resp.status_code})")
                return
            if any(p.get("price") is None for p in products):
                resp.failure("a product has no price")


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
