"""Load for lesson 09: the same shoppers as lessons 01 and 07, for the shop here or on the cluster.

Point it at minimesh's gateway, or at a `kubectl port-forward` to the
cluster's web Service, and compare the two runs' percentiles: the same
YAML, two data planes.

    locust -f lessons/09-graduate/locustfile.py --headless -u 20 -r 5 -t 30s \\
        --host http://127.0.0.1:8080 --csv /tmp/minimesh

The run is a gate as in the other lessons: more than 1 % of failed requests
(LOCUST_MAX_ERROR_RATIO) and locust exits 1.
"""

import sys
from pathlib import Path

from locust import between

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared shopper and gate
from shop_load import ShopVisitor, error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0.01)


class Shopper(ShopVisitor):
    wait_time = between(0.5, 2)
    checkout_chance = 0.2
