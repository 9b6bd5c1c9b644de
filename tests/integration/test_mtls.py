"""mTLS between real sidecars: STRICT, PERMISSIVE, secure naming, and the CA's door (join tokens).

Every test runs a real control plane and real `minimesh sidecar` processes
with join tokens (tests/support/mtls.py). Rogue clients are what a learner
would use: `openssl s_client`, a raw TCP socket, Python's ssl module.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import subprocess
import time

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from minimesh.pki.ca import CertificateAuthority
from minimesh.pki.spiffe import spiffe_id
from minimesh.pki.svid import uri_sans
from minimesh.pki.workload import build_csr, new_key
from tests.support.control import wait_for
from tests.support.mtls import araw_exchange, mtls_client_context, run_secure_mesh, write_leaf

pytestmark = pytest.mark.timeout(120)

HTTP_GET = b"GET /items HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n"


def peer_auth(mode: str, app: str | None = None) -> dict:
    spec: dict = {"mtls": {"mode": mode}}
    if app:
        spec["selector"] = {"matchLabels": {"app": app}}
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": f"{app or 'mesh'}-{mode.lower()}", "namespace": "default"}, "spec": spec}


def s_client(address: str, ca_file, cert=None, key=None, send: bytes = HTTP_GET) -> subprocess.CompletedProcess:
    """`openssl s_client` as a learner runs it: TLS 1.3, our CA, optionally a client certificate."""
    cmd = ["openssl", "s_client", "-connect", address, "-tls1_3", "-CAfile", str(ca_file), "-showcerts",
           "-ign_eof"]
    if cert:
        cmd += ["-cert", str(cert), "-key", str(key)]
    return subprocess.run(cmd, input=send, capture_output=True, timeout=20)


def address_of(url: str) -> str:
    return url.removeprefix("http://")


async def mtls_get(address: str, ctx: ssl.SSLContext, path: str = "/items") -> tuple[int, str]:
    async with aiohttp.ClientSession(trust_env=False) as http:
        async with http.get(f"https://{address}{path}", ssl=ctx, headers={"Host": "catalog"}) as r:
            return r.status, await r.text()


@pytest.fixture
def openssl():
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (Debian: apt-get install openssl)")


async def test_strict_refuses_plaintext_and_every_bad_certificate(tmp_path, openssl):
    async with run_secure_mesh(tmp_path / "home") as mesh:
        catalog = await mesh.add("catalog")
        await mesh.converged()
        await mesh.apply(peer_auth("STRICT"))
        inbound = address_of(catalog.sidecar.inbound)
        ca = mesh.ca()
        ca_file = tmp_path / "ca.pem"
        ca_file.write_text(ca.bundle_pem)

        # A plaintext HTTP request: the connection is closed, the app never answers.
        assert await araw_exchange(inbound, HTTP_GET) == b""

        # The positive control first, so the failures below mean something: a client
        # with a certificate from the mesh CA gets the app's answer through s_client.
        good_cert, good_key = write_leaf(tmp_path / "good", ca, "web")
        ok = s_client(inbound, ca_file, good_cert, good_key)
        assert b"HTTP/1.1 200" in ok.stdout, ok.stderr.decode()

        # The server's certificate: the SPIFFE URI SAN of catalog, an ECDSA P-256 key.
        pem = re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", ok.stdout, re.S).group(0)
        served = x509.load_pem_x509_certificate(pem)
        assert uri_sans(served) == [spiffe_id("catalog")]
        assert isinstance(served.public_key(), ec.EllipticCurvePublicKey)
        assert served.public_key().curve.name == "secp256r1"
        text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True).stdout
        assert b"URI:spiffe://cluster.local/ns/default/sa/catalog" in text and b"P-256" in text

        # No certificate, another CA's certificate, an expired one: the handshake fails.
        # In TLS 1.3 the client sends its certificate (or none) in its last flight, so
        # s_client prints its side of the session and then sees the server hang up
        # ("unexpected eof"); the sidecar's log names the reason it refused.
        other_cert, other_key = write_leaf(tmp_path / "other", CertificateAuthority.create(), "web")
        old_cert, old_key = write_leaf(tmp_path / "old", ca, "web", now=time.time() - 7200, ttl=3600)
        for why, cert, key, reason in [("no certificate", None, None, "PEER_DID_NOT_RETURN_A_CERTIFICATE"),
                                       ("another CA", other_cert, other_key, "unable to get local issuer"),
                                       ("expired", old_cert, old_key, "certificate has expired")]:
            r = s_client(inbound, ca_file, cert, key)
            print(f"--- s_client, {why} ---\n{r.stdout.decode(errors='replace')[-300:]}\n{r.stderr.decode()}")
            assert b"HTTP/1.1" not in r.stdout, f"{why}: the app answered"
            assert r.returncode != 0 or b"unexpected eof" in r.stderr or b"alert" in r.stderr, why
            await wait_for(lambda: asyncio.sleep(0, reason in catalog.sidecar.logs()), 5,
                           what=f"the sidecar to log why it refused ({why})")
        assert "refused a plaintext connection" in catalog.sidecar.logs()


async def test_permissive_serves_plaintext_and_mtls_on_one_port(tmp_path):
    async with run_secure_mesh(tmp_path / "home") as mesh:
        catalog = await mesh.add("catalog")
        await mesh.converged()
        await mesh.apply(peer_auth("PERMISSIVE", app="catalog"))
        inbound = address_of(catalog.sidecar.inbound)
        cert, key = write_leaf(tmp_path / "web", mesh.ca(), "web")
        ctx = mtls_client_context(mesh.ca().bundle_pem, cert, key)

        plain = await araw_exchange(inbound, HTTP_GET)
        assert plain.startswith(b"HTTP/1.1 200"), plain[:200]
        status, body = await mtls_get(inbound, ctx)
        assert status == 200 and '"service": "catalog"' in body or '"service":"catalog"' in body

        # DISABLE: plaintext only; a TLS client is refused on the same port.
        await mesh.apply(peer_auth("DISABLE", app="catalog"))
        assert (await araw_exchange(inbound, HTTP_GET)).startswith(b"HTTP/1.1 200")
        with pytest.raises(aiohttp.ClientError):
            await mtls_get(inbound, ctx)


async def test_a_peer_with_another_identity_is_refused_by_secure_naming(tmp_path):
    async with run_secure_mesh(tmp_path / "home") as mesh:
        await mesh.add("web")
        gateway = await mesh.add_gateway("web")
        ca = mesh.ca()
        # An impostor: a TLS server with a *valid* mesh certificate — for sa/evil — that
        # registers itself as an instance of catalog (the registry takes anyone's word).
        cert, key = write_leaf(tmp_path / "evil", ca, "evil")
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        server_ctx.load_verify_locations(cadata=ca.bundle_pem)
        server_ctx.verify_mode = ssl.CERT_OPTIONAL
        seen = []

        async def handle(reader, writer):
            seen.append(await reader.read(100))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            status, _ = await mesh.cp("POST", "/v1/register", {
                "service": "catalog", "version": "v1", "instance": "catalog-impostor", "kind": "sidecar",
                "identity": spiffe_id("catalog"),
                "addresses": {"inbound": f"127.0.0.1:{port}", "admin": "127.0.0.1:1"}})
            assert status == 200
            await mesh.converged()

            async with mesh.client() as http:
                async with http.get(gateway.listen + "/items", headers={"Host": "catalog"}) as r:
                    error = r.headers.get("x-minimesh-error", "")
                    assert r.status == 503, await r.text()
            assert error.startswith("UF"), error
            assert "peer presented spiffe://cluster.local/ns/default/sa/evil, " \
                   "expected spiffe://cluster.local/ns/default/sa/catalog" in error
            assert not any(seen), "the impostor received a request"
        finally:
            server.close()
            await mesh.cp("DELETE", "/v1/instances/catalog-impostor")


async def test_signing_needs_the_services_own_join_token(tmp_path):
    async with run_secure_mesh(tmp_path / "home") as mesh:
        csr = build_csr(new_key(), spiffe_id("web"))
        body = {"service": "web", "instance": "web-rogue", "csr": csr}
        wrong = mesh.token("payments")  # a real token — for another service
        forged = "mmjt." + "0" * 40

        async def sign(headers):
            async with mesh.client() as http:
                async with http.post(mesh.control_url + "/v1/sign", json=body, headers=headers) as r:
                    return r.status, await r.json()

        for headers in ({}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": f"Bearer {forged}"},
                        {"Authorization": "Basic d2ViOndlYg=="}):
            status, answer = await sign(headers)
            assert status == 403, answer
            assert "certificate" not in answer and "join token" in answer["error"]

        # The control: the right token signs.
        status, answer = await sign({"Authorization": f"Bearer {mesh.token('web')}"})
        assert status == 200 and answer["spiffe_id"] == spiffe_id("web")

        # A valid token does not buy another identity.
        body["csr"] = build_csr(new_key(), spiffe_id("payments"))
        status, answer = await sign({"Authorization": f"Bearer {mesh.token('web')}"})
        assert status == 400 and "join token is for spiffe://cluster.local/ns/default/sa/web" in answer["error"]

        def logged():
            logs = mesh.control.logs()
            return logs if logs.count("refused to sign for service 'web'") >= 4 else None
        logs = await wait_for(lambda: asyncio.sleep(0, logged()), 5, what="refusals in the control plane log")
        assert logs.count("signed spiffe://") == 1  # only the control request was signed
        for secret in (wrong, forged, mesh.token("web"), "d2ViOndlYg=="):
            assert secret not in logs, "a token leaked into the log"
