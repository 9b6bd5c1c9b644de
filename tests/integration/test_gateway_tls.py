"""TLS at the ingress gateway: a Gateway server on 443 with `tls.mode: SIMPLE` and a learner's certificate.

Real processes and real TLS: a control plane, web and catalog beside
sidecars, the gateway with its HTTP and HTTPS listeners. The certificate is
the learner's own (a CA and a leaf it signed, tests/support/certs.py), put
in a `v1` TLS Secret in istio-system exactly as `kubectl create secret tls
--dry-run=client -o yaml` prints it. The client is Python's ssl, verifying
the gateway's certificate and name against that CA alone, as
`curl --cacert ca.crt --resolve shop.example.com:443:127.0.0.1` would.
"""

import asyncio
import base64
import ssl

import aiohttp

import yaml

import pytest
import pytest_asyncio

from tests.integration.test_analyze_cli import run_cli
from tests.support.certs import client_context, learner_certificate, tls_secret
from tests.support.manifests import delete_all
from tests.support.mesh import run_mesh

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

HTTP = {"number": 80, "name": "http", "protocol": "HTTP"}
HTTPS = {"number": 443, "name": "https", "protocol": "HTTPS"}


def gateway(*servers) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "shop-gateway", "namespace": "default"},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": list(servers)}}


def https_server(hosts, credential="shop-credential") -> dict:
    return {"port": HTTPS, "hosts": hosts, "tls": {"mode": "SIMPLE", "credentialName": credential}}


def shop_vs(hosts=("shop.example.com", "admin.example.com")) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {"hosts": list(hosts), "gateways": ["shop-gateway"],
                     "http": [{"route": [{"destination": {"host": "catalog"}}]}]}}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    async with run_mesh(tmp_path_factory.mktemp("gateway-tls") / "home") as mesh:
        await mesh.add("catalog")
        await mesh.add_gateway(default_service=None)
        await mesh.converged()
        yield mesh


@pytest.fixture(scope="module")
def learner():
    return learner_certificate(["shop.example.com"])


async def forget(mesh, secret: str) -> None:
    """Back to no Gateway, no VirtualService, no Secret."""
    await delete_all(mesh, "VirtualService", "Gateway")
    await mesh.cp("DELETE", f"/v1/config/Secret/{secret}?namespace=istio-system")


@pytest_asyncio.fixture(loop_scope="module")
async def served(mesh, learner):
    """shop.example.com over https with the learner's certificate; plain HTTP on 80 as before."""
    ca, cert, key = learner
    await mesh.apply(tls_secret("shop-credential", cert, key),
                     gateway({"port": HTTP, "hosts": ["*"]}, https_server(["shop.example.com"])), shop_vs())
    yield mesh
    await forget(mesh, "shop-credential")


async def https_get(mesh, ca: bytes, sni: str, host: str | None = None, path: str = "/items"):
    """(status, x-minimesh-error, body) of GET https://SNI/path at the gateway's TLS port, verifying by `ca`."""
    async with mesh.client() as http, http.get(
            f"https://127.0.0.1:{mesh.gateway.tls_port}{path}", ssl=client_context(ca), server_hostname=sni,
            headers={"Host": host or sni}) as r:
        return r.status, r.headers.get("x-minimesh-error", ""), await r.text()


async def handshake(port: int, ca: bytes, sni: str | None) -> str:
    """'ok', or why the TLS handshake failed."""
    ctx = client_context(ca)
    ctx.check_hostname = False  # we want the server's answer to this SNI, not our own name check
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    except (ssl.SSLError, ConnectionError) as e:
        return f"failed: {e}"
    writer.close()
    return "ok"


async def test_the_gateway_terminates_tls_with_the_learners_certificate(served, learner):
    ca, _, _ = learner
    status, error, body = await https_get(served, ca, "shop.example.com")
    assert status == 200 and '"service": "catalog"' in body.replace('":"', '": "'), (status, error, body)
    # The certificate the client verified is the learner's: another CA's client refuses it.
    other_ca, _, _ = learner_certificate(["shop.example.com"])
    with pytest.raises(Exception) as refused:
        await https_get(served, other_ca, "shop.example.com")
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    # Port 80 still serves plain HTTP.
    async with served.client() as http, http.get(served.gateway.listen + "/items",
                                                 headers={"Host": "shop.example.com"}) as r:
        assert r.status == 200


async def test_a_host_the_server_does_not_serve_is_404_nr_over_tls(served, learner):
    ca, _, _ = learner
    # Right SNI, wrong Host: the handshake works, the route does not — 404 NR, as Envoy answers.
    status, error, _ = await https_get(served, ca, "shop.example.com", host="admin.example.com")
    assert status == 404 and error.startswith("NR (route, gateway)"), error
    assert "port 443" in error


async def test_an_sni_no_server_serves_fails_the_handshake(served, learner):
    ca, _, _ = learner
    assert await handshake(served.gateway.tls_port, ca, "shop.example.com") == "ok"
    assert (await handshake(served.gateway.tls_port, ca, "other.example.com")).startswith("failed")
    assert (await handshake(served.gateway.tls_port, ca, None)).startswith("failed")  # no SNI, no '*' server
    # ... and the gateway still serves the right name afterwards.
    assert (await https_get(served, ca, "shop.example.com"))[0] == 200


async def test_plaintext_to_the_tls_port_is_refused(served, learner):
    reader, writer = await asyncio.open_connection("127.0.0.1", served.gateway.tls_port)
    writer.write(b"GET /items HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:  # closed with our request unread: a reset
        answer = b""
    writer.close()
    assert answer == b"", answer[:100]  # closed without an HTTP answer
    assert (await https_get(served, learner[0], "shop.example.com"))[0] == 200


async def test_a_missing_secret_leaves_the_server_unserved_until_it_is_applied(mesh, learner, tmp_path):
    ca, cert, key = learner
    # `minimesh apply` applies it, as Istio does, and warns as istioctl analyze would.
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump_all([gateway(https_server(["shop.example.com"], credential="later")), shop_vs()]))
    code, out, err = await run_cli("apply", str(path), home=mesh.control.home, control_url=mesh.control_url)
    assert code == 0 and "gateway/shop-gateway created" in out, out + err
    assert "IST0161 InvalidGatewayCredential" in err and "no TLS Secret 'later' in namespace istio-system" in err
    await mesh.converged()
    try:
        assert (await handshake(mesh.gateway.tls_port, ca, "shop.example.com")).startswith("failed")
        await mesh.apply(tls_secret("later", cert, key))
        assert (await https_get(mesh, ca, "shop.example.com"))[0] == 200
    finally:
        await forget(mesh, "later")


async def test_https_redirect_answers_301_to_https(mesh, learner):
    ca, cert, key = learner
    await mesh.apply(tls_secret("shop-credential", cert, key),
                     gateway({"port": HTTP, "hosts": ["shop.example.com"], "tls": {"httpsRedirect": True}},
                             https_server(["shop.example.com"])), shop_vs())
    try:
        async with mesh.client() as http, http.get(mesh.gateway.listen + "/items?x=1", allow_redirects=False,
                                                   headers={"Host": "shop.example.com"}) as r:
            assert r.status == 301 and r.headers["location"] == "https://shop.example.com/items?x=1"
        assert (await https_get(mesh, ca, "shop.example.com"))[0] == 200
    finally:
        await forget(mesh, "shop-credential")


async def test_only_the_gateway_holds_the_secret_and_nobody_shows_its_key(served, learner):
    _, cert, key = learner
    key_b64 = tls_secret("x", cert, key)["data"]["tls.key"]
    # The gateway holds it (it serves with it), but its config_dump shows a fingerprint.
    dump = await served.gateway.config_dump()
    secrets = [r for r in dump["snapshot"]["resources"] if r["kind"] == "Secret"]
    assert len(secrets) == 1 and secrets[0]["fingerprint"]["sha256"].startswith("SHA256:")
    assert key_b64 not in str(dump) and "PRIVATE KEY" not in str(dump)
    # A sidecar never receives it at all.
    sidecar_dump = await served.instances[0].sidecar.config_dump()
    assert not [r for r in sidecar_dump["snapshot"]["resources"] if r["kind"] == "Secret"]
    # `minimesh get` (GET /v1/config) shows the fingerprint, not the key.
    status, stored = await served.cp("GET", "/v1/config?kind=Secret")
    assert status == 200 and len(stored["resources"]) == 1
    assert key_b64 not in str(stored) and stored["resources"][0]["fingerprint"]["dnsNames"] == ["shop.example.com"]


async def test_a_bad_secret_is_refused_at_apply_with_one_line_and_nothing_changes(served, learner, tmp_path):
    ca, cert, key = learner
    _, _, other_key = learner_certificate(["shop.example.com"])  # a key that is not this certificate's
    bad = tls_secret("shop-credential", cert, other_key)
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(bad, sort_keys=False))
    before = (await served.cp("GET", "/v1/status"))[1]["config_version"]
    code, out, err = await run_cli("apply", str(path), home=served.control.home, control_url=served.control_url)
    assert code == 1, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "secret.yaml:" in lines[0] and "data.tls.key" in lines[0], err
    assert "not the certificate's" in lines[0]
    assert (await served.cp("GET", "/v1/status"))[1]["config_version"] == before
    assert (await https_get(served, ca, "shop.example.com"))[0] == 200  # the good one still serves
    # `minimesh get secrets -n istio-system`: the one in force, by fingerprint, never its key.
    code, out, err = await run_cli("get", "secrets", "-n", "istio-system", home=served.control.home,
                                   control_url=served.control_url)
    assert code == 0 and "shop-credential" in out and "SHA256:" in out, out + err
    assert "PRIVATE KEY" not in out and tls_secret("x", cert, key)["data"]["tls.key"] not in out


async def test_mutual_tls_needs_a_client_certificate_from_the_secrets_ca(mesh, learner, tmp_path):
    """mode MUTUAL: the client proves itself too, with a certificate chaining to the Secret's ca.crt."""
    ca, cert, key = learner
    client_ca, client_cert, client_key = learner_certificate(["client.example.com"], ca_name="clients")
    secret = tls_secret("mutual-credential", cert, key)
    secret["type"] = "Opaque"  # as `kubectl create secret generic --from-file=tls.crt=... --from-file=ca.crt=...`
    secret["data"]["ca.crt"] = base64.b64encode(client_ca).decode()
    await mesh.apply(secret, gateway({"port": HTTPS, "hosts": ["shop.example.com"],
                                      "tls": {"mode": "MUTUAL", "credentialName": "mutual-credential"}}), shop_vs())
    try:
        # Without a client certificate: refused (TLS 1.3 tells the client when it first reads).
        with pytest.raises(aiohttp.ClientError):
            await https_get(mesh, ca, "shop.example.com")
        # With one from the clients' CA: served.
        (tmp_path / "c.pem").write_bytes(client_cert)
        (tmp_path / "k.pem").write_bytes(client_key)
        ctx = client_context(ca)
        ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
        async with mesh.client() as http, http.get(
                f"https://127.0.0.1:{mesh.gateway.tls_port}/items", ssl=ctx, server_hostname="shop.example.com",
                headers={"Host": "shop.example.com"}) as r:
            assert r.status == 200
        # One signed by another CA (here: the server's own): refused.
        _, other_cert, other_key = learner_certificate(["client.example.com"])
        (tmp_path / "c.pem").write_bytes(other_cert)
        (tmp_path / "k.pem").write_bytes(other_key)
        ctx = client_context(ca)
        ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
        with pytest.raises(aiohttp.ClientError):
            async with mesh.client() as http, http.get(
                    f"https://127.0.0.1:{mesh.gateway.tls_port}/items", ssl=ctx, server_hostname="shop.example.com",
                    headers={"Host": "shop.example.com"}) as r:
                await r.read()
    finally:
        await forget(mesh, "mutual-credential")


async def test_a_renewed_secret_is_served_to_the_next_handshake(served, learner):
    """kubectl apply of a new certificate under the same name: no restart, the next client gets it."""
    old_ca, _, _ = learner
    new_ca, new_cert, new_key = learner_certificate(["shop.example.com"], ca_name="renewed")
    await served.apply(tls_secret("shop-credential", new_cert, new_key))
    assert (await https_get(served, new_ca, "shop.example.com"))[0] == 200
    with pytest.raises(aiohttp.ClientError):  # the old CA no longer verifies what the gateway presents
        await https_get(served, old_ca, "shop.example.com")
