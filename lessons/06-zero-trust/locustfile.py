"""Load for lesson 06: signed-in shoppers, each with a token from the lesson's issuer.

Each simulated shopper first asks the issuer for a token (through the
gateway, `Host: issuer`) and sends it with every request, so checkout keeps
working once step 6 requires a token. Before the lockdown is lifted (steps
2-4) most requests fail on purpose: that is the lesson.

    locust -f lessons/06-zero-trust/locustfile.py --headless -u 10 -r 5 -t 30s \\
        --host http://127.0.0.1:8080

The run is a gate: locust exits 1 when more than LOCUST_MAX_ERROR_RATIO
(default 0.01) of all requests failed — with every step of the lesson in
force, none should.
"""

import sys
import uuid
from pathlib import Path

from locust import between

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lessons/: the shared shopper and gate
from shop_load import ShopVisitor, error_ratio_gate  # noqa: E402

MAX_ERROR_RATIO = error_ratio_gate(default=0.01)


class Shopper(ShopVisitor):
    wait_time = between(0.5, 2)
    checkout_chance = 0.3

    def on_start(self):
        name = f"shopper-{uuid.uuid4().hex[:8]}"
        with self.client.get(f"/token?sub={name}", headers={"Host": "issuer"}, name="/token (issuer)",
                             catch_response=True) as resp:
            token = resp.text.strip()
            if resp.status_code != 200 or token.count(".") != 2:
                resp.failure(f"no token from the issuer (HTTP {resp.status_code})")
                return
        self.client.headers["Authorization"] = f"Bearer {token}"
