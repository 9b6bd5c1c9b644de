"""VirtualService http[] fields with Istio's semantics, through real sidecars and real sockets.

Two echo apps of `catalog` (v1, v2) answer with the path, method and headers
they received, each behind its own `minimesh sidecar`; a gateway and the
outbound listener of a `web` echo's sidecar are the two callers (for
`sourceLabels`). Each test applies a VirtualService, waits until every
proxy runs it, and looks at what the caller got and what the app saw.
"""

import asyncio
import base64
import collections

import pytest
import pytest_asyncio

from tests.support.control import wait_for
from tests.support.echo import add_echo
from tests.support.manifests import TEST_GATEWAYS, destination_rule
from tests.support.mesh import client_session, run_mesh

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

SUBSETS = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}},
           {"name": "v9", "labels": {"version": "v9"}}]  # v9: no instance has the label (503 UH)


FQDN = "catalog.default.svc.cluster.local"


def catalog_vs(*routes) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "catalog"},
            "spec": {"hosts": ["catalog"], "gateways": TEST_GATEWAYS, "http": list(routes)}}


def to(subset=None, **extra) -> dict:
    destination = {"host": "catalog", **({"subset": subset} if subset else {})}
    return {"destination": destination, **extra}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    async with run_mesh(tmp_path_factory.mktemp("route-fields") / "home") as mesh:
        echoes = [await add_echo(mesh, "catalog", "v1"), await add_echo(mesh, "catalog", "v2"),
                  await add_echo(mesh, "web", "v1")]
        await mesh.add_gateway(default_service="web")  # its Gateway binds catalog's VirtualService at the ingress
        await mesh.converged()
        try:
            yield mesh
        finally:
            for echo in echoes:
                await echo.runner.cleanup()


async def apply(mesh, *routes):
    await mesh.apply(destination_rule("catalog", subsets=SUBSETS), catalog_vs(*routes))


async def call(mesh, path="/items", method="GET", headers=None, host=None, via="gateway"):
    """(status, headers, body: parsed JSON when the echo answered, else text) of one request.

    At the ingress a VirtualService's short host means its FQDN, as on Istio: the gateway
    is asked for `catalog.default.svc.cluster.local`; a sidecar resolves `catalog` itself.
    """
    host = host or (FQDN if via == "gateway" else "catalog")
    async with client_session() as http:
        if via == "gateway":
            url, proxy = mesh.gateway.listen + path, None
        else:  # through the web echo's sidecar, as web's app would call: HTTP_PROXY to its outbound
            web = next(i for i in mesh.instances if i.service == "web")
            url, proxy = f"http://{host}{path}", web.sidecar.outbound
        async with http.request(method, url, headers={"Host": host, **(headers or {})}, proxy=proxy,
                                allow_redirects=False) as r:
            text = await r.text()
            body = await r.json() if r.content_type == "application/json" else text
            return r.status, r.headers, body


# --- weights and subsets ------------------------------------------------------------------------

async def test_weights_are_relative_one_to_three_is_a_quarter(mesh):
    await apply(mesh, {"route": [to("v1", weight=1), to("v2", weight=3)]})
    seen = collections.Counter()
    for _ in range(400):
        status, _, body = await call(mesh)
        assert status == 200
        seen[body["version"]] += 1
    share = seen["v2"] / 400
    # 4.5 standard deviations of a binomial share of 0.75 over 400 draws: about 0.097.
    assert abs(share - 0.75) <= 0.1, seen


async def test_an_undefined_subset_answers_503_nc(mesh):
    await apply(mesh, {"route": [to("v3")]})
    status, headers, _ = await call(mesh)
    assert status == 503 and headers["x-minimesh-error"].startswith("NC (route"), headers


async def test_destination_port_80_routes_and_another_port_is_503_nc(mesh):
    await apply(mesh, {"match": [{"uri": {"prefix": "/eighty"}}],
                       "route": [to("v2", destination={"host": "catalog", "subset": "v2", "port": {"number": 80}})]},
                {"route": [{"destination": {"host": "catalog", "port": {"number": 9999}}}]})
    status, _, body = await call(mesh, "/eighty")
    assert (status, body["version"]) == (200, "v2")
    status, headers, _ = await call(mesh, "/other")
    assert status == 503 and headers["x-minimesh-error"].startswith("NC"), headers


# --- rewrite --------------------------------------------------------------------------------------

async def test_rewrite_uri_swaps_the_matched_prefix_and_keeps_the_query(mesh):
    await apply(mesh, {"match": [{"uri": {"prefix": "/shop/"}}], "rewrite": {"uri": "/", "authority": "backend"},
                       "route": [to("v1")]},
                {"match": [{"uri": {"exact": "/old"}}], "rewrite": {"uri": "/new"}, "route": [to("v1")]},
                {"rewrite": {"uriRegexRewrite": {"match": "^/v1/([a-z]+)/(\\d+)$", "rewrite": "/api/\\2/\\1"}},
                 "route": [to("v1")]})
    _, _, body = await call(mesh, "/shop/items?x=1")
    assert body["path"] == "/items?x=1"
    assert body["headers"]["host"] == "backend"
    _, _, body = await call(mesh, "/old?y=2")
    assert body["path"] == "/new?y=2"
    _, _, body = await call(mesh, "/v1/items/42?z")
    assert body["path"] == "/api/42/items?z"
    _, _, body = await call(mesh, "/unchanged")  # the regex does not match: the path goes as it came
    assert body["path"] == "/unchanged"


async def test_a_mirror_copy_carries_the_rewrite_and_the_header_operations(mesh):
    # Envoy shadows the request as the router sends it: rewritten, with the route's headers applied.
    await apply(mesh, {"match": [{"uri": {"prefix": "/shop/"}}], "rewrite": {"uri": "/"},
                       "headers": {"request": {"set": {"x-tier": "gold"}}},
                       "mirror": {"host": "catalog", "subset": "v2"}, "route": [to("v1")]})
    v2 = next(i for i in mesh.instances if i.service == "catalog" and i.version == "v2")
    v2.seen.clear()
    status, _, body = await call(mesh, "/shop/mirrored?n=1")
    assert (status, body["version"], body["path"]) == (200, "v1", "/mirrored?n=1")

    def copy():
        return next((s for s in v2.seen if s["path"] == "/mirrored?n=1"), None)
    shadow = await wait_for(lambda: asyncio.sleep(0, copy()), 10, what="the mirror copy at catalog v2")
    assert shadow["headers"]["x-tier"] == "gold"
    assert shadow["headers"]["host"] == f"{FQDN}-shadow"  # Envoy appends -shadow to the Host it was asked


# --- redirect and directResponse ----------------------------------------------------------------

async def test_redirect_answers_301_with_the_location_and_never_reaches_the_app(mesh):
    await apply(mesh, {"match": [{"uri": {"prefix": "/old"}}], "redirect": {"uri": "/new"}},
                {"match": [{"uri": {"prefix": "/secure"}}],
                 "redirect": {"scheme": "https", "authority": "shop.example", "port": 8443, "redirectCode": 308}},
                {"match": [{"uri": {"prefix": "/legacy/"}}],
                 "redirect": {"prefixRewrite": "/v2/", "scheme": "https", "derivePort": "FROM_PROTOCOL_DEFAULT"}},
                {"route": [to("v1")]})
    status, headers, body = await call(mesh, "/old/page?q=1")
    assert status == 301 and headers["location"] == f"http://{FQDN}/new?q=1" and body == ""
    status, headers, _ = await call(mesh, "/secure/x")
    assert status == 308 and headers["location"] == "https://shop.example:8443/secure/x"
    status, headers, _ = await call(mesh, "/legacy/items?id=3", host=f"{FQDN}:8080")
    assert status == 301 and headers["location"] == f"https://{FQDN}/v2/items?id=3"


async def test_direct_response_answers_with_its_status_and_body(mesh):
    await apply(mesh, {"match": [{"uri": {"exact": "/teapot"}}],
                       "directResponse": {"status": 418, "body": {"string": "short and stout"}}},
                {"match": [{"uri": {"exact": "/bytes"}}],
                 "directResponse": {"status": 200, "body": {"bytes": base64.b64encode(b"raw\x01").decode()}},
                 "headers": {"response": {"set": {"x-answered-by": "proxy"}}}},
                {"route": [to("v1")]})
    status, headers, body = await call(mesh, "/teapot")
    assert (status, body, headers["content-type"]) == (418, "short and stout", "text/plain")
    async with client_session() as http:
        async with http.get(mesh.gateway.listen + "/bytes", headers={"Host": FQDN}) as r:
            assert (r.status, await r.read(), r.headers["x-answered-by"]) == (200, b"raw\x01", "proxy")


# --- headers ------------------------------------------------------------------------------------

async def test_headers_set_add_remove_at_route_and_destination_and_the_route_wins(mesh):
    await apply(mesh, {"headers": {"request": {"set": {"x-tier": "route"}, "add": {"x-trail": "route"},
                                               "remove": ["x-secret"]},
                                   "response": {"set": {"x-served": "route"}, "remove": ["x-drop-me"]}},
                       "route": [to("v1", headers={"request": {"set": {"x-tier": "destination", "x-dest": "v1"}},
                                                   "response": {"add": {"x-dest-response": "v1"}}})]})
    status, headers, body = await call(mesh, headers={"x-secret": "s3cret", "x-trail": "client"})
    assert status == 200
    seen = body["headers"]
    assert seen["x-tier"] == "route" and seen["x-dest"] == "v1"  # both set x-tier: the route's value wins
    assert "x-secret" not in seen
    assert headers["x-served"] == "route" and headers["x-dest-response"] == "v1"
    # add appends a value: the app saw the client's and the route's
    async with client_session() as http:
        async with http.get(mesh.gateway.listen + "/items",
                            headers={"Host": FQDN, "x-trail": "client"}) as r:
            trail = (await r.json())["headers"]["x-trail"]
    assert trail.replace(" ", "") == "client,route"


async def test_headers_set_or_add_of_host_rewrite_the_authority_as_istio_does(mesh):
    # Istio (route.go TranslateHeadersOperations) turns a request set/add of Host or :authority into
    # the route's host_rewrite_literal, what rewrite.authority gives; a destination's applies unless
    # the route rewrites it (Envoy runs the route's rewrite last).
    await apply(mesh, {"match": [{"uri": {"prefix": "/set-host"}}],
                       "headers": {"request": {"set": {"Host": "backend"}}}, "route": [to("v1")]},
                {"match": [{"uri": {"prefix": "/add-authority"}}],
                 "headers": {"request": {"add": {":authority": "added"}}}, "route": [to("v1")]},
                {"match": [{"uri": {"prefix": "/both"}}], "headers": {"request": {"set": {"host": "route-host"}}},
                 "route": [to("v1", headers={"request": {"set": {"host": "destination-host"}}})]},
                {"route": [to("v1", weight=1, headers={"request": {"set": {"host": "host-v1"}}}),
                           to("v2", weight=1, headers={"request": {"set": {"host": "host-v2"}}})]})
    for via in ("gateway", "web"):  # the ingress gateway and web's sidecar both rewrite it
        status, _, body = await call(mesh, "/set-host", via=via)
        assert (status, body["headers"]["host"], body["version"]) == (200, "backend", "v1"), via
    _, _, body = await call(mesh, "/add-authority")
    assert body["headers"]["host"] == "added"
    _, _, body = await call(mesh, "/both")
    assert body["headers"]["host"] == "route-host"
    seen = {}
    for _ in range(60):  # each destination of the split its own Host; both seen: 1 - 2**-59
        _, _, body = await call(mesh, "/split", via="web")
        seen[body["version"]] = body["headers"]["host"]
        if len(seen) == 2:
            break
    assert seen == {"v1": "host-v1", "v2": "host-v2"}


async def test_route_response_headers_reach_the_routers_own_503_too(mesh):
    # Envoy's router finalizes its local replies (no healthy upstream here) with the route's response headers.
    await apply(mesh, {"headers": {"response": {"set": {"x-served": "route"}}}, "route": [to("v9")]})
    status, headers, _ = await call(mesh)
    assert status == 503 and headers["x-minimesh-error"].startswith("UH")
    assert headers["x-served"] == "route"


# --- corsPolicy ---------------------------------------------------------------------------------

CORS = {"allowOrigins": [{"exact": "https://shop.example"}, {"regex": "https://.*\\.test"}],
        "allowMethods": ["GET", "POST"], "allowHeaders": ["x-cart"], "exposeHeaders": ["x-total"],
        "maxAge": "24h", "allowCredentials": True}


async def test_cors_preflight_from_an_allowed_origin_is_answered_by_the_proxy(mesh):
    await apply(mesh, {"corsPolicy": CORS, "route": [to("v1")]})
    preflight = {"Origin": "https://a.test", "Access-Control-Request-Method": "POST"}
    status, headers, body = await call(mesh, method="OPTIONS", headers=preflight)
    assert status == 200 and body == ""  # answered here: the echo would have sent JSON
    assert headers["access-control-allow-origin"] == "https://a.test"
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-allow-headers"] == "x-cart"
    assert headers["access-control-max-age"] == "86400"
    assert headers["access-control-allow-credentials"] == "true"
    # An origin not allowed: the preflight goes on to the app (FORWARD), with no CORS headers back.
    status, headers, body = await call(mesh, method="OPTIONS", headers={**preflight, "Origin": "https://evil.example"})
    assert body["method"] == "OPTIONS" and "access-control-allow-origin" not in headers
    # An actual request from an allowed origin gets the headers; from another, none.
    _, headers, body = await call(mesh, headers={"Origin": "https://shop.example"})
    assert body["method"] == "GET"
    assert headers["access-control-allow-origin"] == "https://shop.example"
    assert headers["access-control-expose-headers"] == "x-total"
    _, headers, _ = await call(mesh, headers={"Origin": "https://shop.example.evil"})
    assert "access-control-allow-origin" not in headers


# --- match fields -------------------------------------------------------------------------------

async def test_match_query_params_ignore_uri_case_without_headers_and_presence(mesh):
    await apply(mesh,
                {"match": [{"queryParams": {"beta": {"exact": "on"}}}], "route": [to("v2")]},
                {"match": [{"uri": {"prefix": "/Cart"}, "ignoreUriCase": True}], "route": [to("v2")]},
                {"match": [{"headers": {"x-canary": {}}}], "route": [to("v2")]},
                {"match": [{"withoutHeaders": {"x-user": {"exact": "alice"}}}], "route": [to("v2")]},
                {"route": [to("v1")]})
    version = lambda reply: reply[2]["version"]  # noqa: E731
    assert version(await call(mesh, "/items?beta=on")) == "v2"
    assert version(await call(mesh, "/items?beta=off")) == "v1"
    assert version(await call(mesh, "/CART/checkout")) == "v2"
    assert version(await call(mesh, "/items", headers={"x-canary": ""})) == "v2"  # present, even empty
    assert version(await call(mesh, "/items", headers={"x-user": "bob"})) == "v2"
    assert version(await call(mesh, "/items", headers={"x-user": "alice"})) == "v1"
    assert version(await call(mesh, "/items")) == "v1"  # absent header: no match, as on Istio (#50988)


async def test_match_source_labels_port_and_authority(mesh):
    await apply(mesh,
                {"match": [{"sourceLabels": {"app": "web"}}], "route": [to("v2")]},
                {"match": [{"port": 8080}], "route": [to("v2")]},
                {"match": [{"authority": {"regex": r"catalog(\.default\.svc\.cluster\.local)?:9[0-9]+"}}],
                 "route": [to("v2")]},
                {"route": [to("v1")]})
    # web's sidecar carries app=web: its calls match; the gateway's (istio=ingressgateway) do not.
    assert (await call(mesh, via="web"))[2]["version"] == "v2"
    assert (await call(mesh))[2]["version"] == "v1"
    assert (await call(mesh, host=f"{FQDN}:8080"))[2]["version"] == "v2"
    assert (await call(mesh, host=f"{FQDN}:80"))[2]["version"] == "v1"
    assert (await call(mesh, host=f"{FQDN}:9000"))[2]["version"] == "v2"
