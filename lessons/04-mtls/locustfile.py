"""Load for lesson 04: shoppers browsing while certificates rotate under them.

The shop page and the product list, through the gateway: every hop behind it
(gateway → web → catalog, pricing) is mutual TLS once PeerAuthentication
allows it, and with this lesson's 20 s certificates every proxy renews about
every 10 s. The point of the run: rotation and STRICT cost no request.

    locust -f lessons/04-mtls/locustfile.py --headless -u 20 -r 5 -t 1m \\
        --host http://127.0.0.1:8080

(or leave out --headless and open http://localhost:8089). The host is always
given on the command line: nothing here knows where the gateway is.

The run is a gate: locust exits 1 when more than LOCUST_MAX_ERROR_RATIO of
all requests failed (default 0: in this lesson not one request may fail, not
even across a certificate rotation).
"""

import sys
from pathlib import Path

from locust import between

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared shopper and gate
from shop_load import ShopVisitor, error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0)


class Shopper(ShopVisitor):
    wait_time = between(0.2, 1)
    checkout_chance = 0  # browsing only: the page and the product list
