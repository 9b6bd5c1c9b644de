"""The canary lesson's planted bug: pricing v2 fails a share of the requests that include p3 — only those."""

import json
import urllib.request

import pytest

from tests.support.shop import start_service

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status_of(url: str) -> int:
    try:
        with _opener.open(url, timeout=5) as resp:
            json.loads(resp.read())
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize("share, lo, hi", [("0.5", 0.40, 0.60), ("1", 1.0, 1.0), ("0", 0.0, 0.0)])
def test_a_share_of_p3_requests_fail_and_no_other(share, lo, hi):
    with start_service("pricing", env={"VERSION": "v2", "INSTANCE": "pricing-v2-0", "PRICING_BUG": "1",
                                       "PRICING_BUG_SHARE": share}) as svc:
        p3 = [status_of(f"{svc.url}/prices?ids=p1,p3") for _ in range(200)]
        others = [status_of(f"{svc.url}/prices?ids=p1,p2,p4,p5") for _ in range(50)]
    assert set(p3) <= {200, 503} and set(others) == {200}
    assert lo <= p3.count(503) / len(p3) <= hi
