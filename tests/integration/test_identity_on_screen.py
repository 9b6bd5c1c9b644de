"""Under STRICT mTLS the screens say mutual TLS, with the identity each certificate proved (issue 18, defect 2).

Before, the caller's side of every hop (the gateway's and web's outbound) was
reported as plaintext — the TUI's edges view showed no padlock and the tap
explanation said "named in the x-minimesh-peer header, not proved" for
traffic that was mutual TLS all the way. Real sidecars with join tokens,
a real control plane, real traffic; the TUI's own client and explanation.
"""

import asyncio
import time

import pytest

from minimesh.pki.spiffe import spiffe_id
from tests.support.mtls import run_secure_mesh
from tui.client import ControlClient, HttpTransport
from tui.explain import peer_identity
from tui.feed import padlock

pytestmark = pytest.mark.timeout(120)

STRICT = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
          "metadata": {"name": "default", "namespace": "default"}, "spec": {"mtls": {"mode": "STRICT"}}}


async def test_strict_traffic_shows_as_mutual_tls_with_the_proved_identity(tmp_path):
    async with run_secure_mesh(tmp_path / "home") as mesh:
        await mesh.add("web")
        await mesh.add("catalog")
        await mesh.add("pricing")
        gateway = await mesh.add_gateway("web")
        await mesh.apply(STRICT)
        tui = ControlClient(HttpTransport(mesh.control_url))

        # Shop through the gateway while tapping, as the TUI's tap view does.
        events, since = await asyncio.to_thread(tui.tap, None, 0.1)
        deadline = time.monotonic() + 30
        seen = {}
        async with mesh.client() as http:
            while time.monotonic() < deadline and len(seen) < 3:
                async with http.get(gateway.listen + "/api/products") as resp:
                    assert resp.status == 200, await resp.text()
                got, since = await asyncio.to_thread(tui.tap, since, 1.0)
                for e in got:
                    hop = (e.reporter, e.source.service, e.destination.service)
                    if hop in (("gateway", "gateway", "web"), ("outbound", "web", "catalog"),
                               ("inbound", "web", "catalog")):
                        seen[hop] = e
        assert len(seen) == 3, f"tap lines seen: {sorted(seen)}"

        # Each hop is mutual TLS, and names the SPIFFE ID the other end proved.
        assert seen[("gateway", "gateway", "web")].identity == spiffe_id("web")
        assert seen[("outbound", "web", "catalog")].identity == spiffe_id("catalog")
        assert seen[("inbound", "web", "catalog")].identity == spiffe_id("web")
        for event in seen.values():
            assert event.mtls
            assert "proved by its certificate (mutual TLS)" in peer_identity(event)
            assert "header" not in peer_identity(event)

        # The edges view's padlock: every request of web → catalog was mutual TLS.
        edges = {(e.source, e.destination): e for e in (await asyncio.to_thread(tui.stat, 60)).edges}
        assert padlock(edges[("web", "catalog")].mtls_share) == "🔒"
        assert padlock(edges[("gateway", "web")].mtls_share) == "🔒"
