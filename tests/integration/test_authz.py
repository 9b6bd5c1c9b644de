"""AuthorizationPolicy and RequestAuthentication through real sidecars, over real mTLS.

A real control plane, real `minimesh sidecar` processes holding certificates
from the mesh CA, and clients that prove an identity the way a peer sidecar
does: a certificate signed by that CA (tests/support/mtls.py). Behind the
sidecar under test runs a small echo app that answers with the path and the
headers it received, so a test can see what the mesh handed on. Tokens are
signed with keys the test makes.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.control import minimesh_command, wait_for
from tests.support.mtls import mtls_client_context, run_secure_mesh, start_token_sidecar, write_leaf
from tests.support.mesh import Instance
from tests.support.shop import serve_routes

pytestmark = pytest.mark.timeout(120)

ISSUER = "https://issuer.test"


# --- the pieces ---------------------------------------------------------------------------------

async def echo(request: web.Request) -> web.Response:
    return web.json_response({"path": request.path_qs, "method": request.method,
                              "headers": {k.lower(): v for k, v in request.headers.items()}})


class Echo:
    """An echo app behind a sidecar of `service` with a join token, and clients with identities."""

    def __init__(self, mesh, tmp_path, service: str = "catalog"):
        self.mesh, self.tmp_path, self.service = mesh, tmp_path, service

    async def start(self) -> "Echo":
        self.runner, port = await serve_routes(web.route("*", "/{tail:.*}", echo))
        self.sidecar = await start_token_sidecar(self.mesh.control_url, self.service, self.mesh.token(self.service),
                                                 port, instance=f"{self.service}-echo", log_dir=self.mesh.log_dir)
        self.mesh.instances.append(Instance(self.service, "v1", "echo", None, self.sidecar))
        self.inbound = self.sidecar.inbound.removeprefix("http://")
        await self.mesh.converged()
        return self

    def as_peer(self, service: str) -> ssl.SSLContext:
        cert, key = write_leaf(self.tmp_path / service, self.mesh.ca(), service)
        return mtls_client_context(self.mesh.ca().bundle_pem, cert, key)

    async def call(self, peer: str | None, method: str = "GET", path: str = "/items",
                   headers: dict | None = None) -> tuple[int, str, dict]:
        """A request as `peer` over mTLS (None: plaintext, no identity)."""
        scheme, ssl_ctx = ("https", self.as_peer(peer)) if peer else ("http", None)
        async with aiohttp.ClientSession(trust_env=False) as http:
            async with http.request(method, f"{scheme}://{self.inbound}{path}", ssl=ssl_ctx,
                                    headers={"Host": self.service, **(headers or {})}) as r:
                return r.status, await r.text(), dict(r.headers)

    async def stop(self) -> None:
        await self.runner.cleanup()


def authz(name: str, spec: dict, namespace: str = "default", dry_run: bool = False) -> dict:
    meta = {"name": name, "namespace": namespace}
    if dry_run:
        meta["annotations"] = {"istio.io/dry-run": "true"}
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": meta, "spec": spec}


def principal(service: str) -> str:
    return f"cluster.local/ns/default/sa/{service}"


def selecting(app: str) -> dict:
    return {"selector": {"matchLabels": {"app": app}}}


async def authz_check(mesh, *args: str) -> str:
    """`minimesh authz check ARGS` against the mesh's control plane; its output."""
    done = await asyncio.to_thread(subprocess.run, [*minimesh_command(), "authz", "check", *args,
                                                    "--control", mesh.control_url],
                                   capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def delete_all(mesh, kind: str, *names: str) -> None:
    for name in names:
        status, body = await mesh.cp("DELETE", f"/v1/config/{kind}/{name}")
        assert status == 200, body
    await mesh.converged()


# --- AuthorizationPolicy ------------------------------------------------------------------------

async def test_policies_decide_by_peer_certificate_method_and_path(tmp_path):
    async with run_secure_mesh(tmp_path / "home") as mesh:
        echo = await Echo(mesh, tmp_path).start()
        try:
            # No policy: everyone gets in, mTLS or not.
            assert (await echo.call("web"))[0] == 200
            assert (await echo.call(None))[0] == 200

            # Allow-nothing (`spec: {}`): 403 with Envoy's body, flag RBAC, and our reason.
            await mesh.apply(authz("allow-nothing", {**selecting("catalog")}))
            status, body, headers = await echo.call("web")
            assert (status, body) == (403, "RBAC: access denied")
            assert headers["x-minimesh-error"].startswith("RBAC (authz, inbound): denied: no ALLOW policy matched")
            assert "default/allow-nothing has no rules" in headers["x-minimesh-error"]
            line = next(e for e in reversed(echo.sidecar.access_log()) if e["status"] == 403)
            assert line["flags"] == "RBAC" and line["authz"]["decision"] == "deny"

            # ALLOW of GET only, next to allow-nothing: GET passes, POST does not.
            await mesh.apply(authz("get-only", {**selecting("catalog"),
                                                "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}))
            assert (await echo.call("web", "GET"))[0] == 200
            status, _, headers = await echo.call("web", "POST")
            assert status == 403 and "get-only rules[0]: to[0].operation.methods" in headers["x-minimesh-error"]
            await delete_all(mesh, "AuthorizationPolicy", "allow-nothing", "get-only")

            # ALLOW by principal: the identity comes from the certificate the peer proved.
            await mesh.apply(authz("from-web", {**selecting("catalog"), "rules": [
                {"from": [{"source": {"principals": [principal("web")]}}]}]}))
            assert (await echo.call("web"))[0] == 200
            assert (await echo.call("pricing"))[0] == 403
            # A plaintext caller has no principal: it is denied even when it claims one in a header.
            status, _, _ = await echo.call(None, headers={"x-minimesh-peer": "web;v1;web-1",
                                                          "x-forwarded-client-cert": f"URI=spiffe://{principal('web')}"})
            assert status == 403
            line = next(e for e in reversed(echo.sidecar.access_log()) if e["status"] == 200)
            assert line["authz"] == {"decision": "allow", "reason": "allowed by ALLOW policy default/from-web rules[0]",
                                     "policy": "default/from-web", "rule": 0}

            # DENY beats ALLOW; the deny names its policy and rule.
            await mesh.apply(authz("no-pay", {**selecting("catalog"), "action": "DENY", "rules": [
                {"to": [{"operation": {"paths": ["/pay*"]}}]}]}))
            status, body, headers = await echo.call("web", "POST", "/pay")
            assert (status, body) == (403, "RBAC: access denied")
            assert "denied by DENY policy default/no-pay rules[0]" in headers["x-minimesh-error"]
            # A spelling the policy did not foresee is normalized first, as Envoy does, and the
            # app sees the normalized path.
            assert (await echo.call("web", "POST", "/items/../pay"))[0] == 403
            status, body, _ = await echo.call("web", "GET", "/x/../items")
            assert status == 200 and json.loads(body)["path"] == "/items"

            # `minimesh authz check` gives the same answers from the applied config, sending nothing.
            out = await authz_check(mesh, "web", "catalog", "POST", "/pay")
            assert "DENY (403 RBAC: access denied): denied by DENY policy default/no-pay rules[0]" in out
            out = await authz_check(mesh, "pricing", "catalog", "GET", "/items")
            assert "default/from-web rules[0]: from[0].source.principals" in out
            assert "'cluster.local/ns/default/sa/pricing'" in out
            out = await authz_check(mesh, "web", "catalog", "GET", "/items")
            assert "ALLOW: allowed by ALLOW policy default/from-web rules[0]" in out

            # `minimesh stat` counts the denials per edge, where they were enforced: the six above.
            async def denials():
                _, doc = await mesh.cp("GET", "/v1/stat?window=60")
                return sum(d["denied"] for d in doc.get("denials", []) if d["destination"]["service"] == "catalog")
            await wait_for(lambda: _at_least(denials(), 6), 10, what="the denials to reach the control plane")
        finally:
            await echo.stop()


async def _at_least(count, n: int) -> bool:
    return await count >= n


async def test_root_namespace_dry_run_and_audit(tmp_path):
    async with run_secure_mesh(tmp_path / "home") as mesh:
        echo = await Echo(mesh, tmp_path).start()
        try:
            # A selector-less policy in another namespace does not reach a `default` workload...
            await mesh.apply(authz("nothing", {}, namespace="shop"))
            assert (await echo.call("web"))[0] == 200
            # ...one in the root namespace istio-system reaches every workload.
            await mesh.apply(authz("nothing", {}, namespace="istio-system"))
            assert (await echo.call("web"))[0] == 403

            # Dry-run: evaluated and logged, never enforced.
            await mesh.apply(authz("nothing", {"rules": [{}]}, namespace="istio-system"),
                             authz("deny-web-dry", {"action": "DENY", "rules": [
                                 {"from": [{"source": {"principals": [principal("web")]}}]}]}, dry_run=True),
                             authz("audit-items", {"action": "AUDIT", "rules": [
                                 {"to": [{"operation": {"paths": ["/items"]}}]}]}))
            status, _, _ = await echo.call("web", path="/items")
            assert status == 200
            line = echo.sidecar.access_log()[-1]
            assert line["authz"]["dry_run"] == "would deny: denied by DENY policy default/deny-web-dry rules[0]"
            assert line["authz"]["audit"] == "default/audit-items rules[0]"
        finally:
            await echo.stop()


async def test_the_gateway_enforces_policies_that_select_it(tmp_path):
    async with run_secure_mesh(tmp_path / "home") as mesh:
        echo = await Echo(mesh, tmp_path).start()
        gateway = await mesh.add_gateway(default_service="catalog")
        await mesh.converged()
        try:
            gate = {"selector": {"matchLabels": {"istio": "ingressgateway"}}}
            await mesh.apply(authz("no-admin", {**gate, "action": "DENY", "rules": [
                {"to": [{"operation": {"paths": ["/admin*"]}}]}]}, namespace="istio-system"))
            async with aiohttp.ClientSession(trust_env=False) as http:
                async with http.get(gateway.listen + "/admin/x") as r:
                    assert (r.status, await r.text()) == (403, "RBAC: access denied")
                    assert r.headers["x-minimesh-error"].startswith("RBAC (authz, gateway): denied by DENY policy "
                                                                    "istio-system/no-admin")
                async with http.get(gateway.listen + "/items") as r:
                    assert r.status == 200
            # The request the gateway let through reached catalog over mTLS as the gateway;
            # a policy at catalog sees the gateway's principal: Istio's ingress gateway's (lesson 06 names it).
            await mesh.apply(authz("only-gateway", {**selecting("catalog"), "rules": [
                {"from": [{"source": {"principals": [
                    "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}}]}]}))
            async with aiohttp.ClientSession(trust_env=False) as http:
                async with http.get(gateway.listen + "/items") as r:
                    assert r.status == 200
            assert (await echo.call("web"))[0] == 403
        finally:
            await echo.stop()


# --- RequestAuthentication ----------------------------------------------------------------------

def ec_keys(kid: str = "ec-1"):
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return key, {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}


def rsa_keys(kid: str = "rsa-1"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return key, {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def token(key, kid: str, alg: str, **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "alice", "aud": "shop", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def request_authn(name: str, rule: dict, app: str = "catalog") -> dict:
    return {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {**selecting(app), "jwtRules": [{"issuer": ISSUER, **rule}]}}


async def test_jwt_inline_keys_401_no_token_passes_principal_and_claims(tmp_path):
    ec_key, ec_jwk = ec_keys()
    rsa_key, rsa_jwk = rsa_keys()
    other_key, _ = ec_keys()
    async with run_secure_mesh(tmp_path / "home") as mesh:
        echo = await Echo(mesh, tmp_path).start()
        try:
            await mesh.apply(request_authn("jwt", {
                "audiences": ["shop"], "jwks": json.dumps({"keys": [ec_jwk, rsa_jwk]}),
                "outputPayloadToHeader": "x-jwt-payload",
                "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"}]}))

            def bearer(t):
                return {"Authorization": f"Bearer {t}"}

            # A valid token, ES256 and RS256: accepted; by default the token is not forwarded, the
            # payload and the chosen claim are.
            for good in (token(ec_key, "ec-1", "ES256"), token(rsa_key, "rsa-1", "RS256")):
                status, body, _ = await echo.call("web", headers={**bearer(good), "x-jwt-sub": "mallory"})
                seen = json.loads(body)["headers"]
                assert status == 200 and "authorization" not in seen
                assert seen["x-jwt-sub"] == "alice"  # the client's own x-jwt-sub was dropped
                assert json.loads(jwt.utils.base64url_decode(seen["x-jwt-payload"]))["sub"] == "alice"

            # Invalid tokens: 401 with Envoy's words.
            for bad, words in [
                (token(other_key, "ec-1", "ES256"), "Jwt verification fails"),  # signed by another key
                (token(ec_key, "ec-1", "ES256", exp=int(time.time()) - 3600), "Jwt is expired"),
                (token(ec_key, "ec-1", "ES256", iss="https://evil.test"), "Jwt issuer is not configured"),
                (token(ec_key, "ec-1", "ES256", aud="other"), "Audiences in Jwt are not allowed"),
                ("not.a-token", "Jwt is not in the form"),
            ]:
                status, body, headers = await echo.call("web", headers=bearer(bad))
                assert status == 401 and body.startswith(words), (words, body)
                assert "www-authenticate" in {k.lower() for k in headers}
            # From the query parameter too (Istio's default locations: the header and access_token).
            bad = token(other_key, "ec-1", "ES256")
            assert (await echo.call("web", path=f"/items?access_token={bad}"))[0] == 401

            # No token: passes, with no request principal...
            assert (await echo.call("web"))[0] == 200
            # ...until an AuthorizationPolicy requires one, and checks a nested claim.
            await mesh.apply(authz("need-token", {**selecting("catalog"), "rules": [{
                "from": [{"source": {"requestPrincipals": [f"{ISSUER}/*"]}}],
                "when": [{"key": "request.auth.claims[address][country]", "values": ["NL"]}]}]}))
            assert (await echo.call("web"))[0] == 403
            dutch = token(ec_key, "ec-1", "ES256", address={"country": "NL"})
            assert (await echo.call("web", headers=bearer(dutch)))[0] == 200
            belgian = token(ec_key, "ec-1", "ES256", address={"country": "BE"})
            status, _, headers = await echo.call("web", headers=bearer(belgian))
            assert status == 403 and "request.auth.claims[address][country]" in headers["x-minimesh-error"]

            # authz check with a token file: the same verification, the same decision.
            (tmp_path / "dutch.jwt").write_text(dutch)
            out = await authz_check(mesh, "web", "catalog", "GET", "/items", "--jwt", str(tmp_path / "dutch.jwt"))
            assert f"request principal {ISSUER}/alice" in out and "ALLOW: allowed by ALLOW policy default/need-token" in out
            (tmp_path / "old.jwt").write_text(token(ec_key, "ec-1", "ES256", exp=int(time.time()) - 3600))
            out = await authz_check(mesh, "web", "catalog", "GET", "/items", "--jwt", str(tmp_path / "old.jwt"))
            assert "DENY (401: the token is refused): Jwt is expired" in out
        finally:
            await echo.stop()


async def test_jwt_from_a_jwks_uri_custom_location_and_forwarding(tmp_path):
    ec_key, ec_jwk = ec_keys()
    fetched = []

    async def jwks(request):
        fetched.append(time.monotonic())
        return web.json_response({"keys": [ec_jwk]})
    runner, port = await serve_routes(web.get("/jwks.json", jwks))
    async with run_secure_mesh(tmp_path / "home") as mesh:
        echo = await Echo(mesh, tmp_path).start()
        try:
            await mesh.apply(request_authn("jwt", {
                "jwksUri": f"http://127.0.0.1:{port}/jwks.json", "forwardOriginalToken": True,
                "fromHeaders": [{"name": "x-token", "prefix": "Token "}]}))
            good = token(ec_key, "ec-1", "ES256")
            status, body, _ = await echo.call("web", headers={"x-token": f"Token {good}"})
            assert status == 200 and json.loads(body)["headers"]["x-token"] == f"Token {good}"  # forwarded
            # Only the configured location is read: a bad bearer token is not even looked at.
            assert (await echo.call("web", headers={"Authorization": "Bearer junk"}))[0] == 200
            assert (await echo.call("web", headers={"x-token": "Token junk"}))[0] == 401
            assert len(fetched) == 1  # fetched once, then served from the cache
        finally:
            await echo.stop()
            await runner.cleanup()
