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

import sys
from pathlib import Path

from locust import between

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared shopper and gate
from shop_load import ShopVisitor, error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0.02)


class Shopper(ShopVisitor):
    wait_time = between(0.5, 2)
    checkout_chance = 0.5  # every other visit ends with a purchase
