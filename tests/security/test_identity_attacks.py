"""Attacks on identity in the data plane and at the CA, each refused while the shop keeps serving.

Identity comes only from a verified certificate: a header cannot claim one,
a certificate from another CA or trust domain cannot carry one, the CA will
not sign one that is not exactly the token's, and an endpoint that proved
none never receives plaintext where the destination wants mTLS.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from minimesh.pki.ca import CertificateAuthority
from minimesh.pki.operator import credentials_dir, operator_context
from minimesh.pki.workload import build_csr, new_key
from tests.security.attack import Trap, attack_on, call, client_tls
from tests.support.control import wait_for
from tests.support.mtls import araw_exchange, write_leaf

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]

SPOOF = "payments;v1;payments-v1-0"


def ca(shop) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(shop.control.home / "control")


def inbound_of(shop, service: str) -> str:
    return next(i.sidecar for i in shop.instances if i.service == service).inbound.removeprefix("http://")


def peer_auth(mode: str) -> dict:
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": "default"}, "spec": {"mtls": {"mode": mode}}}


async def tls_request(address: str, ctx: ssl.SSLContext, headers: str = "") -> bytes:
    """One HTTP/1.1 request over TLS with our own socket; b"" when the server hangs up."""
    host, port = address.rsplit(":", 1)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), ssl=ctx), 10)
        writer.write(f"GET /items HTTP/1.1\r\nHost: catalog\r\n{headers}Connection: close\r\n\r\n".encode())
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return answer
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return b""


async def test_a_spoofed_peer_header_never_names_the_caller(shop, tmp_path):
    catalog = next(i.sidecar for i in shop.instances if i.service == "catalog")
    address = inbound_of(shop, "catalog")
    web_cert, web_key = write_leaf(tmp_path, ca(shop), "web")
    web_tls = client_tls(ca(shop).bundle_pem, web_cert, web_key)
    async with attack_on(shop.gateway.listen) as during:
        # Plaintext (PERMISSIVE, the default) claiming to be payments: served, but as nobody.
        plain = await araw_exchange(address, f"GET /items HTTP/1.1\r\nHost: catalog\r\nx-minimesh-peer: {SPOOF}"
                                             "\r\nx-request-id: spoof-plain\r\nConnection: close\r\n\r\n".encode())
        assert plain.startswith(b"HTTP/1.1 200"), plain[:100]
        # Over mTLS as web, still claiming payments: the certificate wins.
        signed = await tls_request(address, web_tls, f"x-minimesh-peer: {SPOOF}\r\nx-request-id: spoof-mtls\r\n")
        assert signed.startswith(b"HTTP/1.1 200"), signed[:100]
    assert during.all_ok(), (during.statuses.count(200), during.errors[:3])

    def logged(request_id):
        return next((line for line in catalog.access_log() if line.get("request_id") == request_id), None)
    plain_line = await wait_for(lambda: asyncio.sleep(0, logged("spoof-plain")), 5, what="the plaintext request's line")
    mtls_line = await wait_for(lambda: asyncio.sleep(0, logged("spoof-mtls")), 5, what="the mTLS request's line")
    assert plain_line["peer"] is None and plain_line["mtls"] is False
    assert mtls_line["peer"] == "web;;" and mtls_line["mtls"] is True
    assert "payments" not in str(plain_line) + str(mtls_line)


async def test_foreign_ca_and_foreign_trust_domain_certificates_are_refused(shop, tmp_path):
    catalog = next(i.sidecar for i in shop.instances if i.service == "catalog")
    address = inbound_of(shop, "catalog")
    bundle = ca(shop).bundle_pem
    # Another CA's certificate for web: the handshake fails.
    other_cert, other_key = write_leaf(tmp_path / "other", CertificateAuthority.create(), "web")
    # Our own CA's signature on another trust domain's ID (the CA refuses such CSRs now; a
    # certificate from before, or from a CA shared with another mesh, looks like this).
    key = new_key()
    evil = ca(shop).issue(key.public_key(), "spiffe://evil.example/ns/default/sa/web")
    evil_cert, evil_key = tmp_path / "evil.crt", tmp_path / "evil.key"
    evil_cert.write_bytes(evil.pem.encode())
    evil_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    async with attack_on(shop.gateway.listen) as during:
        for cert, key_path in ((other_cert, other_key), (evil_cert, evil_key)):
            answer = await tls_request(address, client_tls(bundle, cert, key_path))
            assert b"HTTP/1.1" not in answer, answer[:100]
    assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
    await wait_for(lambda: asyncio.sleep(0, "not of trust domain cluster.local" in catalog.logs()), 5,
                   what="the sidecar to log the foreign trust domain")


def csr_with(key, names: list[x509.GeneralName] | None) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("names,why", [
    (None, "names no SPIFFE ID"),
    ([x509.UniformResourceIdentifier("spiffe://cluster.local/ns/default/sa/catalog"), x509.DNSName("catalog")],
     "exactly one"),
    ([x509.UniformResourceIdentifier("spiffe://evil.example/ns/default/sa/catalog")], "trust domain"),
    ([x509.UniformResourceIdentifier("spiffe://cluster.local/ns/default/sa/payments")], "join token is for"),
])
async def test_the_ca_signs_only_exactly_the_tokens_identity(shop, names, why):
    url = shop.control.https_url
    anonymous = client_tls((credentials_dir(shop.control.home) / "ca.pem").read_text())
    body = {"service": "catalog", "instance": "catalog-rogue", "csr": csr_with(new_key(), names)}
    async with attack_on(shop.gateway.listen) as during:
        # A real token for catalog (stolen, say): still no certificate for anything but catalog's ID.
        status, answer = await call(url, "POST", "/v1/sign", anonymous, body=body,
                                    headers={"Authorization": f"Bearer {shop.control.token('catalog')}"})
        assert status == 400 and why in answer["error"], answer
    assert during.all_ok(), (during.statuses.count(200), during.errors[:3])


async def test_an_endpoint_without_identity_never_gets_plaintext_under_strict(shop):
    trap = await Trap.open()
    admin = operator_context("admin", shop.control.home)
    web = next(i.sidecar for i in shop.instances if i.service == "web")
    # An endpoint that proved nothing: only the admin can register one (a workload's registration
    # always carries its certificate's identity), as an operator's mistake would.
    fake = {"service": "catalog", "version": "v1", "instance": "catalog-no-identity", "kind": "sidecar",
            "addresses": {"inbound": trap.address}}
    try:
        status, _ = await call(shop.control.https_url, "POST", "/v1/register", admin, body=fake)
        assert status == 200
        await shop.apply(peer_auth("STRICT"))
        async with attack_on(shop.gateway.listen) as during:
            pass
        # Every shop request succeeded (retries go to the real catalog), and not one byte reached the
        # endpoint without an identity: each attempt at it was refused with the reason.
        assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
        assert trap.connections == 0
        refusals = [t for line in web.access_log() for t in line.get("tries") or []
                    if t[2] and "no verified identity" in str(t[2])]
        assert refusals, "web's sidecar never picked the endpoint without an identity"

        # PERMISSIVE: plaintext to it is possible again, as on Istio — and says so in telemetry.
        await shop.apply(peer_auth("PERMISSIVE"))
        async with shop.client() as http:
            for _ in range(20):
                async with http.get(shop.gateway.listen + "/api/products") as r:
                    await r.read()
        await wait_for(lambda: asyncio.sleep(0, trap.connections > 0), 10, what="plaintext to reach the endpoint")
        labels = {line.get("upstream_security") for line in web.access_log() if line["reporter"] == "outbound"}
        assert "plaintext (no verified identity)" in labels, labels
    finally:
        await call(shop.control.https_url, "DELETE", "/v1/instances/catalog-no-identity", admin)
        await shop.cp("DELETE", "/v1/config/PeerAuthentication/default")
        await shop.converged()
        trap.close()
