"""Lesson 08 end to end: the way in (Gateway, 404 NR, TLS at the gateway), then the way out (ALLOW_ANY,
REGISTRY_ONLY, a ServiceEntry, retries).

`rates` runs under lesson.yaml's `outside:` with no sidecar; pricing calls
it as rates.example.com, which the runner resolves for the sidecars
(--resolve). Every step's `lesson check` must pass; beyond the checks,
the egress steps ask what a learner would: did the refusal happen at
pricing's own sidecar, with flag BH, and did rates hear nothing? The TLS
step asks curl's question too: does https://shop.example.com verify against
the lesson's CA, and is the 404 for another Host the gateway's own (NR)?
"""

import http.client
import json
import socket
import ssl
from urllib.parse import urlsplit

import pytest

from tests.support.stack import REPO, running_stack

LESSON = REPO / "lessons" / "08-ingress-egress"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(LESSON, tmp_path_factory.mktemp("lesson08") / "home") as stack:
        yield stack


def rates_requests(stack) -> int:
    log = stack.home / "logs" / "rates.log"
    return log.read_text().count('"GET /rates')


INGRESS_STEPS = 3  # gateway, unknown-host, tls; then the egress steps


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5, 6, 7])
def test_lesson_check_passes_at_every_step(stack, step):
    r = stack.cli("lesson", "step", "08", str(step))
    assert r.returncode == 0, r.stdout + r.stderr
    before = rates_requests(stack)
    r = stack.cli("lesson", "check", "08")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"step {step}" in r.stdout and "PASS" in r.stdout
    if step == 2:
        assert "404 answers" in r.stdout
    if step == 3:
        _https_as_curl_would(stack)
    if step <= INGRESS_STEPS:
        return
    if step == INGRESS_STEPS + 2:
        # REGISTRY_ONLY: the caller's sidecar refused; the external API never saw a request.
        assert rates_requests(stack) == before
        lines = [json.loads(line.split("minimesh.access: ", 1)[1])
                 for line in (stack.home / "logs" / "pricing-v1-0.sidecar.log").read_text().splitlines()
                 if "minimesh.access: " in line]
        refused = [x for x in lines if x.get("authority") == "rates.example.com" and x["status"] == 502]
        assert refused and all("BH" in str(x.get("flags")) for x in refused), refused[-1:]
    else:
        assert rates_requests(stack) > before


def _https_as_curl_would(stack):
    """curl --cacert shop-ca.crt --resolve shop.example.com:PORT:127.0.0.1 https://shop.example.com:PORT/..."""
    port = urlsplit(json.loads((stack.home / "state.json").read_text())["gateway_https_url"]).port
    ctx = ssl.create_default_context(cafile=str(LESSON / "shop-ca.crt"))

    def get(host: str) -> tuple[int, str]:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 10),
                                    server_hostname="shop.example.com")  # the SNI and the name verified
        conn.request("GET", "/api/products", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.getheader("x-minimesh-error", "")

    status, _ = get("shop.example.com")
    assert status in (200, 502, 503), status  # 502/503: rates' own failures, one page in five
    status, error = get("other.example.com")  # the right certificate, a Host its server does not serve
    assert status == 404 and error.startswith("NR"), (status, error)
