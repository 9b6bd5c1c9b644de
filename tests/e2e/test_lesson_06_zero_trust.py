"""Lesson 06 end to end: allow-nothing mesh-wide, least privilege step by step, a JWT in front of checkout.

Every step is put in force with `minimesh lesson step` and verified with
`minimesh lesson check`. Before a step is applied its check must fail — a
check that cannot fail proves nothing. The break-it exercise (a typo in a
principal) is tried as a learner would: checkout breaks, `minimesh authz
check` names the rule and the field, and the fix brings it back.
"""

import json
import urllib.request

import pytest

from tests.support.stack import REPO, running_stack

LESSON = REPO / "lessons" / "06-zero-trust"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(LESSON, tmp_path_factory.mktemp("lesson06") / "home") as stack:
        yield stack


def post(url: str, headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, method="POST", data=b"{}",
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with OPENER.open(req, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.parametrize("step,shows", [
    (1, ["success rate at least 100.0%"]),
    (2, ["403 answers at least 100.0%"]),
    (3, ["502 answers at least 100.0%"]),
    (4, ["success rate at least 100.0%", "502 answers at least 100.0%"]),
    (5, ["10 checkouts: success rate at least 100.0%"]),
    (6, ["10 checkouts without a token: 403 answers", "10 checkouts with alice's token: success rate"]),
    (7, ["30 product lists: success rate at least 100.0%"]),
])
def test_lesson_check_fails_before_and_passes_at_every_step(stack, step, shows):
    if step > 1:  # the step's own check fails while the previous step is in force
        r = stack.cli("lesson", "check", "06", "--step", str(step), timeout=120)
        assert r.returncode == 1, r.stdout
    r = stack.cli("lesson", "step", "06", str(step))
    assert r.returncode == 0, r.stdout + r.stderr
    r = stack.cli("lesson", "check", "06", timeout=120)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"step {step}" in r.stdout and "PASS" in r.stdout
    for line in shows:
        assert line in r.stdout


def test_denials_a_forged_token_and_the_typo_break_it(stack):
    # Run after the steps above (pytest keeps file order): every policy of the lesson is in force.
    gateway = stack.status()["gateway_url"]
    # Step 7's dry-run policy was evaluated and logged, never enforced: catalog's access log says so.
    logs = "".join(p.read_text(errors="replace") for p in (stack.home / "logs").glob("*.log"))
    assert '"dry_run":"would deny: denied by DENY policy default/no-catalog-for-web rules[0]"' in logs

    # A token the issuer never signed: 401 from the gateway, before any policy is asked.
    status, body = post(gateway + "/api/checkout", {"Authorization": "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln"})
    assert status == 401 and body.startswith("Jwt"), body

    # The typo: one letter wrong in payments' principal. Checkout fails (web sees payments' 403)...
    token = OPENER.open(urllib.request.Request(gateway + "/token?sub=alice", headers={"Host": "issuer"}),
                        timeout=20).read().decode().strip()
    bearer = {"Authorization": f"Bearer {token}"}
    assert stack.cli("apply", str(LESSON / "break-typo.yaml"), "--wait").returncode == 0
    status, body = post(gateway + "/api/checkout", bearer)
    assert status == 502 and json.loads(body)["upstream_status"] == 403, body
    # ...and authz check says which rule and field, without sending anything.
    r = stack.cli("authz", "check", "web", "payments", "POST", "/pay")
    assert r.returncode == 0, r.stderr
    assert "DENY (403 RBAC: access denied)" in r.stdout
    assert "default/payments-from-web rules[0]: from[0].source.principals ('cluster.local/ns/default/sa/webb',) " \
           "does not match 'cluster.local/ns/default/sa/web'" in r.stdout
    assert stack.cli("apply", str(LESSON / "web-pays.yaml"), "--wait").returncode == 0
    assert post(gateway + "/api/checkout", bearer)[0] == 200
    assert "ALLOW" in stack.cli("authz", "check", "web", "payments", "POST", "/pay").stdout

    # minimesh stat lists the denials per edge (step 2's 403s at the gateway, the typo's at payments).
    r = stack.cli("stat", "--window", "300")
    assert r.returncode == 0 and "DENIED (403 RBAC)" in r.stdout, r.stdout
