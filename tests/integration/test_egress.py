"""Egress with real sidecars: ServiceEntry hosts get the mesh's routing, a Sidecar's
REGISTRY_ONLY refuses every other host (502 BH), ALLOW_ANY passes it through.

The "external API" is a real aiohttp server of the test's own on 127.0.0.1,
never registered in the mesh; requests reach it through catalog's sidecar, the
way catalog's own HTTP client would (HTTP_PROXY). One mesh for the module;
each test removes the config it applied.
"""

import asyncio
import re

import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.control import wait_for
from tests.support.manifests import destination_rule, virtual_service
from tests.support.mesh import client_session, run_mesh

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]

HOST = "api.example.com"  # never resolved: the ServiceEntry's STATIC endpoints say where it is


class ExternalApi:
    """A real HTTP server standing in for an API outside the mesh."""

    def __init__(self, name: str):
        self.name = name
        self.seen: list[str] = []
        self.fail_next = 0  # answer this many requests with 503 first
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.path_qs)
        if request.path == "/slow":
            await asyncio.sleep(3)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"api": self.name, "error": "busy"}, status=503)
        return web.json_response({"api": self.name, "host": request.host})

    async def start(self) -> "ExternalApi":
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    async with run_mesh(tmp_path_factory.mktemp("egress") / "home") as mesh:
        await mesh.add("catalog")
        await mesh.converged()
        yield mesh


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def apis():
    started = [await ExternalApi("one").start(), await ExternalApi("two").start()]
    yield started
    for api in started:
        await api.runner.cleanup()


@pytest_asyncio.fixture(loop_scope="module")
async def clean(mesh, apis):
    yield mesh
    for api in apis:
        api.seen.clear()
        api.fail_next = 0
    for kind in ("VirtualService", "DestinationRule", "ServiceEntry", "Sidecar"):
        _, body = await mesh.cp("GET", f"/v1/config?kind={kind}")
        for resource in body["resources"]:
            meta = resource["metadata"]
            await mesh.cp("DELETE", f"/v1/config/{kind}/{meta['name']}?namespace={meta.get('namespace', 'default')}")
    await mesh.converged()


def service_entry(*apis: ExternalApi, host: str = HOST, name: str = "api", labels=True) -> dict:
    """A STATIC ServiceEntry: `host` on port 80, its endpoints the test's servers."""
    return {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": name},
            "spec": {"hosts": [host], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                     "resolution": "STATIC", "location": "MESH_EXTERNAL",
                     "endpoints": [{"address": "127.0.0.1", "ports": {"http": api.port},
                                    **({"labels": {"api": api.name}} if labels else {})} for api in apis]}}


def sidecar(mode: str | None = "REGISTRY_ONLY", namespace: str = "istio-system", hosts=None) -> dict:
    spec: dict = {}
    if mode:
        spec["outboundTrafficPolicy"] = {"mode": mode}
    if hosts:
        spec["egress"] = [{"hosts": hosts}]
    return {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
            "metadata": {"name": "default", "namespace": namespace}, "spec": spec}


async def via_sidecar(mesh, url: str):
    """GET `url` as catalog's app would: through its sidecar's outbound listener (HTTP_PROXY)."""
    outbound = mesh.instances[0].sidecar.outbound
    async with client_session() as http, http.get(url, proxy=outbound) as r:
        return r.status, await r.read(), r.headers


async def test_a_timeout_on_a_service_entry_host_is_enforced(clean, apis):
    # Before this issue a VirtualService timeout on an external host was ignored. With the host
    # declared by a ServiceEntry, the route's 300ms timeout cuts a 3 s answer short: 504 UT.
    mesh, [one, _] = clean, apis
    await mesh.apply(service_entry(one), virtual_service(HOST, timeout="0.3s"))
    started = asyncio.get_running_loop().time()
    status, body, headers = await via_sidecar(mesh, f"http://{HOST}/slow")
    took = asyncio.get_running_loop().time() - started
    assert status == 504 and headers["x-minimesh-error"].startswith("UT"), body
    assert took < 2.5, f"the timeout did not cut the 3 s answer short ({took:.2f}s)"
    # And a quick path on the same host answers, from the STATIC endpoint, with the Host the app named.
    status, body, _ = await via_sidecar(mesh, f"http://{HOST}/hello")
    assert status == 200 and b'"host": "api.example.com"' in body


async def test_retries_on_a_service_entry_host_hide_a_503_and_are_counted(clean, apis):
    mesh, [one, _] = clean, apis
    await mesh.apply(service_entry(one),
                     virtual_service(HOST, retries={"attempts": 2, "retryOn": "5xx", "perTryTimeout": "2s"}))
    one.fail_next = 1
    status, body, _ = await via_sidecar(mesh, f"http://{HOST}/retry-me")
    assert status == 200, body
    assert one.seen == ["/retry-me", "/retry-me"]  # the 503, then the retry that succeeded
    catalog = mesh.instances[0].sidecar

    async def logged():
        return [line for line in catalog.access_log() if line["path"] == "/retry-me"]
    [line] = await wait_for(logged, 5, what="the access-log line")
    assert line["destination"] == HOST and line["attempts"] == 2 and line["external"] is True

    async def counted():
        async with client_session() as http, http.get(catalog.admin + "/metrics") as r:
            text = await r.text()
        return re.search(r'minimesh_requests_total\{[^}]*destination_service="api\.example\.com"[^}]*'
                         r'response_code="200"[^}]*\} [1-9]', text)
    assert await wait_for(counted, 5, what="the request counted under the external host's name")


async def test_destination_rule_subsets_pick_service_entry_endpoints_by_label(clean, apis):
    mesh, [one, two] = clean, apis
    subsets = [{"name": "one", "labels": {"api": "one"}}, {"name": "two", "labels": {"api": "two"}}]
    route = virtual_service(HOST)
    route["spec"]["http"][0]["route"][0]["destination"]["subset"] = "two"
    await mesh.apply(service_entry(one, two), destination_rule(HOST, lb="ROUND_ROBIN", subsets=subsets), route)
    answers = [await via_sidecar(mesh, f"http://{HOST}/which") for _ in range(6)]
    assert all(status == 200 and b'"api": "two"' in body for status, body, _ in answers)
    assert one.seen == [] and len(two.seen) == 6


async def test_registry_only_refuses_unknown_hosts_with_502_bh_and_lets_entries_out(clean, apis):
    mesh, [one, two] = clean, apis
    unknown = f"http://127.0.0.1:{two.port}/leak"
    # ALLOW_ANY (the default): an unknown host passes straight through.
    status, _, _ = await via_sidecar(mesh, unknown)
    assert status == 200 and two.seen == ["/leak"]
    # The mesh-wide default Sidecar in istio-system turns on REGISTRY_ONLY.
    await mesh.apply(sidecar("REGISTRY_ONLY"), service_entry(one))
    status, body, headers = await via_sidecar(mesh, unknown)
    assert status == 502 and headers["x-minimesh-error"].startswith("BH"), body
    assert "REGISTRY_ONLY" in headers["x-minimesh-error"] and "ServiceEntry" in headers["x-minimesh-error"]
    assert two.seen == ["/leak"], "the refused request reached the unknown host"
    # The ServiceEntry's host still gets out, and the mesh's own service still answers.
    status, body, _ = await via_sidecar(mesh, f"http://{HOST}/allowed")
    assert status == 200 and one.seen == ["/allowed"], body
    status, _, _ = await via_sidecar(mesh, "http://catalog/items")
    assert status == 200
    # Back to ALLOW_ANY: the unknown host passes through again.
    await mesh.apply(sidecar("ALLOW_ANY"))
    status, _, _ = await via_sidecar(mesh, unknown)
    assert status == 200 and two.seen == ["/leak", "/leak"]


async def test_a_sidecars_egress_hosts_hide_entries_of_other_namespaces(clean, apis):
    mesh, [one, _] = clean, apis
    # catalog's namespace (default) gets its own Sidecar: it knows only istio-system's hosts, so the
    # ServiceEntry in default is outside its registry — refused, under REGISTRY_ONLY.
    await mesh.apply(service_entry(one), sidecar("REGISTRY_ONLY", namespace="default", hosts=["istio-system/*"]))
    status, body, headers = await via_sidecar(mesh, f"http://{HOST}/hidden")
    assert status == 502 and "egress hosts leave out default/api.example.com" in headers["x-minimesh-error"], body
    assert one.seen == []
    # "./*" imports every host of the Sidecar's own namespace: the entry is reachable again.
    await mesh.apply(sidecar("REGISTRY_ONLY", namespace="default", hosts=["./*"]))
    status, _, _ = await via_sidecar(mesh, f"http://{HOST}/seen")
    assert status == 200 and one.seen == ["/seen"]


async def test_a_short_egress_host_imports_no_mesh_service_and_its_fqdn_does(clean, apis):
    mesh = clean
    # As on Istio, "default/catalog" is matched against service hostnames as written, and catalog's
    # hostname is its FQDN: under REGISTRY_ONLY the short name leaves catalog outside the registry.
    await mesh.apply(sidecar("REGISTRY_ONLY", namespace="default", hosts=["default/catalog"]))
    status, body, headers = await via_sidecar(mesh, "http://catalog/items")
    assert status == 502 and headers["x-minimesh-error"].startswith("BH"), body
    assert "egress hosts leave out default/catalog.default.svc.cluster.local" in headers["x-minimesh-error"]
    # The FQDN imports it: the same request is served by catalog.
    await mesh.apply(sidecar("REGISTRY_ONLY", namespace="default",
                             hosts=["default/catalog.default.svc.cluster.local"]))
    status, body, _ = await via_sidecar(mesh, "http://catalog/items")
    assert status == 200 and b'"service": "catalog"' in body, body


# --- TLS origination: a DestinationRule's tls to a real TLS server ------------------------------


def make_pki(directory):
    """A test CA, a server certificate for api.example.com and a client certificate, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    files = {"ca": directory / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, san, usage in (("server", "api.example.com", x509.ExtendedKeyUsageOID.SERVER_AUTH),
                             ("client", "client.example.com", x509.ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, san)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        files[name] = directory / f"{name}.pem"
        files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{name}-key"] = directory / f"{name}-key.pem"
        files[f"{name}-key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return files


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls_api(tmp_path_factory):
    """A real HTTPS server for api.example.com; it records whether the client presented a certificate."""
    import ssl

    files = make_pki(tmp_path_factory.mktemp("pki"))
    api = ExternalApi("tls")
    clients: list = []

    async def handle(request):
        peer = request.transport.get_extra_info("peercert")
        clients.append(dict(x[0] for x in peer["subject"])["commonName"] if peer else None)
        return await api.handle(request)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files["server"], files["server-key"])
    context.load_verify_locations(files["ca"])
    context.verify_mode = ssl.CERT_OPTIONAL  # MUTUAL presents one, SIMPLE does not
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    api.runner = web.AppRunner(app, access_log=None)
    await api.runner.setup()
    site = web.TCPSite(api.runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    api.port = site._server.sockets[0].getsockname()[1]
    yield api, files, clients
    await api.runner.cleanup()


def tls_rule(**tls) -> dict:
    return destination_rule(HOST, tls=tls)


async def test_simple_tls_origination_verifies_the_server_against_the_rules_ca(clean, tls_api):
    mesh, (api, files, clients) = clean, tls_api
    clients.clear()
    # The app speaks plain HTTP to its sidecar; the sidecar speaks HTTPS to the API (SNI api.example.com).
    await mesh.apply(service_entry(api), tls_rule(mode="SIMPLE", caCertificates=str(files["ca"])))
    status, body, _ = await via_sidecar(mesh, f"http://{HOST}/over-tls")
    assert status == 200 and b'"api": "tls"' in body, body
    assert clients == [None]  # SIMPLE: no client certificate
    # Without the rule's CA the server's certificate is not trusted (the system's roots know no test CA): 503 UF.
    await mesh.apply(tls_rule(mode="SIMPLE"))
    status, body, headers = await via_sidecar(mesh, f"http://{HOST}/untrusted")
    assert status == 503 and headers["x-minimesh-error"].startswith("UF"), body
    assert "CERTIFICATE_VERIFY_FAILED" in headers["x-minimesh-error"]
    # A name the certificate does not carry (sni) fails the check; insecureSkipVerify would skip it.
    await mesh.apply(tls_rule(mode="SIMPLE", caCertificates=str(files["ca"]), sni="other.example.com"))
    status, _, headers = await via_sidecar(mesh, f"http://{HOST}/wrong-name")
    assert status == 503 and "UF" in headers["x-minimesh-error"]
    await mesh.apply(tls_rule(mode="SIMPLE", sni="other.example.com", insecureSkipVerify=True))
    status, _, _ = await via_sidecar(mesh, f"http://{HOST}/skip-verify")
    assert status == 200
    # subjectAltNames replaces the name check: one the certificate has passes, another fails.
    await mesh.apply(tls_rule(mode="SIMPLE", caCertificates=str(files["ca"]), sni="x.example.com",
                              subjectAltNames=["api.example.com"]))
    assert (await via_sidecar(mesh, f"http://{HOST}/san-ok"))[0] == 200
    await mesh.apply(tls_rule(mode="SIMPLE", caCertificates=str(files["ca"]), subjectAltNames=["evil.example.com"]))
    status, _, headers = await via_sidecar(mesh, f"http://{HOST}/san-bad")
    assert status == 503 and "not evil.example.com" in headers["x-minimesh-error"]
    assert api.seen == ["/over-tls", "/skip-verify", "/san-ok"]  # the refused attempts sent no request


async def test_mutual_tls_origination_presents_the_client_certificate(clean, tls_api):
    mesh, (api, files, clients) = clean, tls_api
    clients.clear()
    await mesh.apply(service_entry(api), tls_rule(mode="MUTUAL", caCertificates=str(files["ca"]),
                                                  clientCertificate=str(files["client"]),
                                                  privateKey=str(files["client-key"])))
    status, body, _ = await via_sidecar(mesh, f"http://{HOST}/mutual")
    assert status == 200, body
    assert clients == ["client.example.com"]
    # DISABLE: plaintext to a TLS port — the server cannot read it, and the mesh says so.
    await mesh.apply(tls_rule(mode="DISABLE"))
    status, _, _ = await via_sidecar(mesh, f"http://{HOST}/plain")
    assert status in (502, 503) and clients == ["client.example.com"]


async def test_istio_mutual_to_a_service_entry_endpoint_proves_the_named_identity(clean):
    # A MESH_INTERNAL ServiceEntry whose endpoint is catalog's own sidecar (its inbound listener):
    # ISTIO_MUTUAL makes the caller present its mesh certificate and expect catalog's SPIFFE ID.
    mesh = clean
    catalog = mesh.instances[0].sidecar
    port = int(catalog.inbound.rsplit(":", 1)[1])
    entry = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "internal"},
             "spec": {"hosts": ["catalog.internal.test"], "location": "MESH_INTERNAL", "resolution": "STATIC",
                      "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                      "endpoints": [{"address": "127.0.0.1", "ports": {"http": port}}]}}
    catalog_id = "spiffe://cluster.local/ns/default/sa/catalog"
    await mesh.apply(entry, destination_rule("catalog.internal.test",
                                             tls={"mode": "ISTIO_MUTUAL", "subjectAltNames": [catalog_id]}))
    status, body, _ = await via_sidecar(mesh, "http://catalog.internal.test/items")
    assert status == 200 and b'"service": "catalog"' in body, body
    # Expecting another identity: the handshake succeeds, secure naming refuses — 503 UF, nothing sent.
    await mesh.apply(destination_rule("catalog.internal.test", tls={
        "mode": "ISTIO_MUTUAL", "subjectAltNames": ["spiffe://cluster.local/ns/default/sa/payments"]}))
    status, _, headers = await via_sidecar(mesh, "http://catalog.internal.test/items")
    assert status == 503 and "sa/payments" in headers["x-minimesh-error"], headers.get("x-minimesh-error")
