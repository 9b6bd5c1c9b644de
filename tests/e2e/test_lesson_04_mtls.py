"""Lesson 04 end to end: plaintext on the wire, PERMISSIVE, STRICT with a rogue client, rotation, join tokens.

Every step is put in force with `minimesh lesson step` and verified with
`minimesh lesson check`, which sniffs the wire, sends a rogue plaintext
client, watches serials change and knocks on the CA without a token. Before
a step is applied its check must fail — a check that cannot fail proves
nothing.
"""

import pytest

from tests.support.stack import REPO, running_stack

LESSON = REPO / "lessons" / "04-mtls"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(LESSON, tmp_path_factory.mktemp("lesson04") / "home") as stack:
        yield stack


def test_every_proxy_has_an_identity_and_a_20s_certificate(stack):
    status = stack.status()
    for inst in status["instances"]:
        assert inst["identity"] == f"spiffe://cluster.local/ns/default/sa/{inst['service']}"
        cert = inst["certificate"]
        assert 0 < cert["not_after"] - cert["not_before"] <= 20


def test_the_strict_check_fails_while_plaintext_is_in_force(stack):
    assert stack.cli("lesson", "step", "04", "1").returncode == 0
    r = stack.cli("lesson", "check", "04", "--step", "3")
    assert r.returncode == 1
    assert "mtls-strict.yaml" in r.stdout and "not applied" in r.stdout or "different version" in r.stdout


@pytest.mark.parametrize("step,shows", [
    (1, ["the wire to catalog shows plaintext only"]),
    (2, ["the wire to catalog shows tls only", "is served by catalog"]),
    (3, ["the wire to catalog shows tls only", "is refused by catalog"]),
    (4, ["every proxy shows at least 2 certificate serials"]),
    (5, ["the CA refuses web's certificate without its token", "no token → 403, forged token → 403"]),
])
def test_lesson_check_passes_at_every_step(stack, step, shows):
    r = stack.cli("lesson", "step", "04", str(step))
    assert r.returncode == 0, r.stdout + r.stderr
    r = stack.cli("lesson", "check", "04", timeout=120)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"step {step}" in r.stdout and "PASS" in r.stdout
    for line in shows:
        assert line in r.stdout


def test_sniff_prints_plaintext_then_only_tls(stack):
    import threading
    import time
    import urllib.request

    gateway = stack.status()["gateway_url"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    outputs = {}
    for step in (1, 3):
        assert stack.cli("lesson", "step", "04", str(step)).returncode == 0
        stop = threading.Event()

        def traffic():
            while not stop.is_set():
                opener.open(gateway + "/api/products", timeout=10).read()
                time.sleep(0.05)

        t = threading.Thread(target=traffic)
        t.start()
        try:
            r = stack.cli("sniff", "catalog", "--count", "4", "--seconds", "20", timeout=60)
        finally:
            stop.set()
            t.join()
        assert r.returncode == 0, r.stderr
        outputs[step] = r.stdout
    assert "GET /items HTTP/1.1" in outputs[1]
    assert "TLS handshake" in outputs[3] or "TLS application data" in outputs[3]
    assert "GET /items" not in outputs[3]
