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

from locust import between

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared shopper and gate
from shop_load import ShopVisitor, error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0.01)


class Shopper(ShopVisitor):
    wait_time = between(0.5, 2)
    checkout_chance = 0  # browsing only: the page and the product list
