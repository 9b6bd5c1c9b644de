"""A local stack (`minimesh up`) against a local attacker: the supervisor's API and what listens where.

The runner's supervisor can stop and start any instance (`minimesh stop
catalog-v1-0`). Any local process can reach 127.0.0.1, so its API asks for
the admin's certificate, as the control plane does; here a process without
it tries, and the instance keeps serving.
"""

from __future__ import annotations

import ssl

import pytest

from minimesh.pki.operator import credentials_dir, operator_context
from tests.security.attack import attack_on, call, client_tls, workload_tls
from tests.support.stack import demo, running_stack, write_lesson

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def lesson(tmp_path):
    return write_lesson(tmp_path / "lesson", {"catalog": {"v1": demo("catalog")}}, gateway="catalog")


async def test_stopping_an_instance_needs_the_admins_certificate(lesson, tmp_path):
    with running_stack(lesson, tmp_path / "home") as stack:
        home = stack.home
        url = stack.state()["supervisor_url"]
        assert url.startswith("https://127.0.0.1:")
        path = "/instances/catalog-v1-0/stop"
        ca_pem = (credentials_dir(home) / "ca.pem").read_text()
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
        async with attack_on(stack.status()["gateway_url"], path="/items") as during:
            status, answer = await call(url, "POST", path, client_tls(ca_pem))
            assert status == 401 and "client certificate" in answer["error"], answer
            status, answer = await call(url, "POST", path, unverified)
            assert status == 401, answer
            status, answer = await call(url, "POST", path, operator_context("viewer", home))
            assert status == 403, answer
            status, answer = await call(url, "POST", path, workload_tls(home, tmp_path, "catalog"))
            assert status == 403, answer
            status, _ = await call(url.replace("https://", "http://"), "POST", path, False)
            assert status in (0, 400)
            status, answer = await call(url, "POST", "/instances/catalog-v1-0/start", client_tls(ca_pem))
            assert status == 401, answer
        assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
        assert [i["state"] for i in stack.state()["instances"]] == ["running"]
        # The control: the admin's certificate (what `minimesh stop` presents) does stop it.
        r = stack.cli("stop", "catalog-v1-0")
        assert r.returncode == 0, r.stderr
        assert [i["state"] for i in stack.state()["instances"]] == ["stopped"]
