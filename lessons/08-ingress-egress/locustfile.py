"""Load for lesson 08: the same shoppers as lesson 01, while pricing depends on an API outside the mesh.

Run it at each step and compare: a fifth of product pages fail with
ALLOW_ANY and with the bare ServiceEntry, all of them under REGISTRY_ONLY
alone, almost none once the VirtualService retries rates' 503s. The
shoppers ask for the shop by its name, `Host: shop.example.com`, which every
step's Gateway serves (from step 2 on, no other).

    locust -f lessons/08-ingress-egress/locustfile.py --headless -u 20 -r 5 -t 30s \\
        --host http://127.0.0.1:8080 --csv /tmp/step4

The run is a gate as in the other lessons, with a loose default, 80 % (step 5
fails everything on purpose: set LOCUST_MAX_ERROR_RATIO=0.02 for step 7).
"""

import sys
from pathlib import Path

from locust import between

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared shopper and gate
from shop_load import ShopVisitor, error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0.8)


class Shopper(ShopVisitor):
    wait_time = between(0.5, 2)
    checkout_chance = 0.2

    def on_start(self):
        self.client.headers["Host"] = "shop.example.com"  # the name the Gateway serves, as a browser sends it
