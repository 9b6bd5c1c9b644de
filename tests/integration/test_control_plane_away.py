"""Lesson 04's break-it 3, observable (issue 18, defect 10): stop the control plane, watch certificates expire.

Before: the runner restarted a killed control plane within 2 s, the
renewal-failure log line had an empty reason ("renewal failed ()"), and the
shop kept answering over connections opened while the certificates were
valid. Now `minimesh stop control` keeps it away, every failure says why,
an expired sidecar's next connections are refused, and `minimesh start
control` heals the mesh. Real stack, real certificates with a 6 s lifetime.
"""

import re
import time
import urllib.error
import urllib.request

import pytest

from minimesh.runner.ports import is_listening
from tests.support.stack import demo, running_stack, wait_for, write_lesson

pytestmark = pytest.mark.timeout(180)

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status_of(url: str) -> int:
    try:
        with NO_PROXY.open(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def test_stop_control_expires_certificates_visibly_and_start_heals(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMESH_CERT_TTL", "6s")  # `up` passes it to the control plane it starts
    lesson = write_lesson(tmp_path / "shop", {"catalog": {"v1": demo("catalog")}}, gateway="catalog")
    with running_stack(lesson, tmp_path / "home") as stack:
        state = stack.state()
        shop = state["gateway_url"] + "/items"
        control_port = int(state["control_url"].rsplit(":", 1)[1])
        sidecar_log = state["processes"]["catalog-v1-0.sidecar"]["log"]
        wait_for(lambda: status_of(shop) == 200, timeout=20, what="the shop to answer")

        # Stop the control plane: it stays away (no restart), unlike a crash.
        r = stack.cli("stop", "control")
        assert r.returncode == 0 and "stays away" in r.stdout, r.stderr
        deadline = time.monotonic() + 5  # the restart back-off is 1-2 s: it would be back by now
        while time.monotonic() < deadline:
            assert not is_listening(control_port, timeout=0.2), "the control plane was restarted"
            time.sleep(0.2)

        # Renewals fail with a reason; the certificate expires; the shop stops answering.
        def log():
            return open(sidecar_log, encoding="utf-8", errors="replace").read()
        wait_for(lambda: "EXPIRED and renewal failed" in log(), timeout=20, what="the certificate to expire")
        reasons = re.findall(r"renewal failed \(([^)]*)\)", log())
        assert reasons and all(r.strip() for r in reasons), reasons
        wait_for(lambda: status_of(shop) != 200, timeout=15, what="the shop to refuse expired peers")

        # Bring it back: every sidecar gets a new certificate and the shop heals.
        r = stack.cli("start", "control")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: status_of(shop) == 200, timeout=30, what="the shop to heal")
