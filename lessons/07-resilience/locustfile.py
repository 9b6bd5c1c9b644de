"""Load for lesson 07: a crowd of shoppers who buy a lot while payments is slow or broken.

The same shoppers as in lessons 01 and 02 (shop page, product list, and
every other visit a purchase). Run it once per step with `--csv` and compare
the files: the checkout row's failures and its latency percentiles are the
difference each step makes.

    locust -f lessons/07-resilience/locustfile.py --headless -u 30 -r 10 -t 20s \\
        --host http://127.0.0.1:8080 --csv /tmp/step1

    step 1 (payments slow):      checkouts succeed, median ~400 ms, 95th percentile higher
    step 2 (connection pool):    many checkouts fail at once (502 from web, UO at its sidecar)
    step 3 (outlier detection):  the broken instance is ejected: almost nothing fails
    step 4 (retry budget):       some checkouts fail; payments is not drowned in retries

The run is a gate as in the other lessons, with a loose default (half of
all requests may fail: step 2 fails many checkouts on purpose); set
LOCUST_MAX_ERROR_RATIO to tighten it.
"""

import sys
from pathlib import Path

from locust import between

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared shopper and gate
from shop_load import ShopVisitor, error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0.5)


class Shopper(ShopVisitor):
    wait_time = between(0.2, 1)
    checkout_chance = 0.5  # every other visit ends with a purchase
