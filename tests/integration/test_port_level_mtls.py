"""PeerAuthentication portLevelMtls on a real sidecar: the workload's one port, 8080, takes its own mode.

On Istio the key is the workload (container) port (istio/istio#49098), and
every minimesh app serves 8080 in its container; so `portLevelMtls: {8080:
{mode: DISABLE}}` beside `mtls: {mode: STRICT}` lets plaintext in, and the
reverse refuses it — checked on the wire at catalog's inbound listener.
"""

import pytest

from tests.support.mtls import araw_exchange, run_secure_mesh

pytestmark = pytest.mark.timeout(120)

HTTP_GET = b"GET /items HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n"


def peer_auth(mode: str, port_mode: str) -> dict:
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "catalog"},
            "spec": {"selector": {"matchLabels": {"app": "catalog"}}, "mtls": {"mode": mode},
                     "portLevelMtls": {"8080": {"mode": port_mode}}}}


async def test_the_workload_ports_mode_beats_the_policys_own(tmp_path):
    async with run_secure_mesh(tmp_path / "home") as mesh:
        catalog = await mesh.add("catalog")
        await mesh.converged()
        inbound = catalog.sidecar.inbound.removeprefix("http://")
        # STRICT, but DISABLE on port 8080: plaintext is served.
        await mesh.apply(peer_auth("STRICT", "DISABLE"))
        assert (await araw_exchange(inbound, HTTP_GET)).startswith(b"HTTP/1.1 200")
        # PERMISSIVE, but STRICT on port 8080: plaintext is refused (the connection closes unanswered).
        await mesh.apply(peer_auth("PERMISSIVE", "STRICT"))
        assert await araw_exchange(inbound, HTTP_GET) == b""
        # UNSET on the port inherits the policy's mode: PERMISSIVE serves plaintext again.
        await mesh.apply(peer_auth("PERMISSIVE", "UNSET"))
        assert (await araw_exchange(inbound, HTTP_GET)).startswith(b"HTTP/1.1 200")
