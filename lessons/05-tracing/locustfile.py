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

import sys
from pathlib import Path

from locust import HttpUser, between, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared gate
from shop_load import error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0.01)



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

