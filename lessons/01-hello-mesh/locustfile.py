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

import sys
from pathlib import Path

from locust import between

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared shopper and gate
from shop_load import ShopVisitor, error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0.01)


class Shopper(ShopVisitor):
    wait_time = between(0.5, 2)
    checkout_chance = 0.2  # one visit in five ends with a purchase
