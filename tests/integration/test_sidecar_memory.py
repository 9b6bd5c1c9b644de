"""A sidecar's process never loads aiohttp, cryptography or PyYAML (issue 16: a sidecar in ≤ 45 MB).

aiohttp (with yarl, frozenlist, brotli, …) is ~14 MB of resident memory per
process, `cryptography` ~10 MB and PyYAML ~1 MB; a sidecar serves its admin API and calls
the control plane on the data plane's own HTTP transport, and makes its key
and CSR in a short-lived child process (pki/csr.py). These tests read what a
real `minimesh sidecar` process has mapped (/proc/PID/maps: every shared
library it loaded) after it has done everything that once needed them:
registered, watched, answered the admin API, exported telemetry, obtained
and renewed a certificate and served requests over mTLS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.control import wait_for
from tests.support.mesh import client_session
from tests.support.mtls import run_secure_mesh

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/PID/maps (Linux)")]

# Where the unwanted packages' compiled parts live; any one mapped means the package was imported.
STRICT = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
          "metadata": {"name": "mesh-strict", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}}
UNWANTED = ("/aiohttp/", "/cryptography/", "/yarl/", "/frozenlist/", "/propcache/", "/_cffi_backend", "brotli",
            "/yaml/")


def libraries(pid: int) -> set[str]:
    """The shared objects a process has mapped."""
    paths = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and ".so" in parts[5]:
            paths.add(parts[5])
    return paths


def assert_lean(sidecar) -> None:
    libs = libraries(sidecar.pid)
    # The reading works: the transport's own parser (httptools) is mapped in every sidecar.
    assert any("/httptools/" in path for path in libs), sorted(libs)
    loaded = sorted(path for path in libs if any(name in path for name in UNWANTED))
    assert not loaded, f"{sidecar.instance} loaded {loaded}"


async def get(url: str, **kwargs) -> tuple[int, str]:
    async with client_session() as http, http.get(url, **kwargs) as r:
        return r.status, await r.text()


async def test_a_sidecar_under_mtls_renews_its_certificate_without_loading_either(tmp_path):
    # 10 s certificates: each proxy asks for its next one 5 s after the last (half-life).
    async with run_secure_mesh(tmp_path, cert_ttl="10s") as mesh:
        await mesh.add("catalog")
        await mesh.add("pricing")
        web = await mesh.add("web")
        gateway = await mesh.add_gateway("web")
        await mesh.apply(STRICT)  # a plaintext hop would now be refused: a 200 below is mTLS all the way

        async def renewed() -> bool:
            async with client_session() as http, http.get(web.sidecar.admin + "/certs") as r:
                return (await r.json())["certificate"]["renewals"] >= 1
        await wait_for(renewed, deadline_s=30, what="a renewed certificate")
        # gateway -> web -> catalog, every hop mutual TLS with a renewed certificate.
        status, body = await get(gateway.listen + "/")
        assert status == 200, body
        for page in ("/ready", "/config_dump", "/stats", "/certs", "/metrics"):
            status, _ = await get(web.sidecar.admin + page)
            assert status == 200, page
        # The admin API answers as it did on aiohttp: JSON, 404 elsewhere, GET and HEAD only.
        async with client_session() as http:
            async with http.get(web.sidecar.admin + "/ready?verbose=1") as r:
                assert r.headers["content-type"] == "application/json; charset=utf-8"
                assert (await r.json())["ready"] is True
            async with http.get(web.sidecar.admin + "/nothing-here") as r:
                assert (r.status, await r.text()) == (404, "404: Not Found")
            async with http.post(web.sidecar.admin + "/ready") as r:
                assert (r.status, r.headers["allow"]) == (405, "GET,HEAD")
            async with http.head(web.sidecar.admin + "/stats") as r:
                assert r.status == 200 and await r.read() == b""
        # The telemetry exporter has had an answer (it sends only when there is something to send).
        await wait_for(lambda: _exported(web.sidecar.admin), what="a telemetry batch")
        for sidecar in (web.sidecar, gateway):
            assert_lean(sidecar)


async def _exported(admin: str) -> bool:
    async with client_session() as http, http.get(admin + "/stats") as r:
        doc = await r.json()
    return bool(doc["telemetry"] and (doc["telemetry"].get("heard_s_ago") is not None))
