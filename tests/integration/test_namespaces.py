"""Namespaces, as Istio has them, with real sidecars.

Two copies of the demo catalog run: one in namespace `default`, one in `foo`,
each with a pricing instance beside it whose sidecar we use as the caller
(its outbound listener is an HTTP proxy, as for any app). We check that a
short host is read in the caller's namespace, that a VirtualService in `foo`
does not steer `default`'s traffic, that `exportTo: [.]` hides one from other
namespaces, that identities carry the namespace, and that a selector-less
PeerAuthentication covers its namespace — and the whole mesh only from the
root namespace `istio-system`.
"""

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.support.control import wait_for
from tests.support.manifests import delete_all
from tests.support.mesh import client_session, run_mesh

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

ABORT = {"fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}}}


def catalog_vs(namespace: str, host: str = "catalog", export_to: list | None = None, name: str = "catalog") -> dict:
    spec = {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}], **ABORT}]}
    if export_to is not None:
        spec["exportTo"] = export_to
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def peer_authentication(namespace: str, mode: str) -> dict:
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": namespace}, "spec": {"mtls": {"mode": mode}}}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    async with run_mesh(tmp_path_factory.mktemp("namespaces") / "home") as mesh:
        mesh.catalog = {"default": await mesh.add("catalog"), "foo": await mesh.add("catalog", namespace="foo")}
        mesh.caller = {"default": await mesh.add("pricing"), "foo": await mesh.add("pricing", namespace="foo")}
        await mesh.converged()
        yield mesh


async def call(mesh, namespace: str, host: str) -> tuple[int, str]:
    """GET http://HOST/items through the outbound of the caller in `namespace`: (status, serving instance)."""
    async with client_session() as http:
        async with http.get(f"http://{host}/items", proxy=mesh.caller[namespace].sidecar.outbound) as r:
            body = await r.json(content_type=None) if r.status == 200 else {}
            return r.status, body.get("instance", "")


async def clear(mesh) -> None:
    await delete_all(mesh, "VirtualService", "PeerAuthentication")


async def test_a_short_host_is_read_in_the_callers_namespace(mesh):
    # `catalog` from default is default's catalog; from foo it is foo's; `catalog.foo` and the FQDN name foo's.
    default_name, foo_name = mesh.catalog["default"].name, mesh.catalog["foo"].name
    assert await call(mesh, "default", "catalog") == (200, default_name)
    assert await call(mesh, "foo", "catalog") == (200, foo_name)
    assert await call(mesh, "default", "catalog.foo") == (200, foo_name)
    assert await call(mesh, "default", "catalog.foo.svc.cluster.local") == (200, foo_name)
    assert await call(mesh, "foo", "catalog.default.svc.cluster.local") == (200, default_name)


async def test_identities_carry_the_namespace(mesh):
    _, body = await mesh.cp("GET", "/v1/instances")
    identity = {i["instance"]: i["identity"] for i in body["instances"]}
    assert identity[mesh.catalog["foo"].name] == "spiffe://cluster.local/ns/foo/sa/catalog"
    assert identity[mesh.catalog["default"].name] == "spiffe://cluster.local/ns/default/sa/catalog"


async def test_a_virtual_service_in_foo_does_not_steer_default(mesh):
    try:
        # `catalog` in a VirtualService of foo means catalog.foo.svc.cluster.local.
        await mesh.apply(catalog_vs("foo"))
        assert (await call(mesh, "foo", "catalog"))[0] == 418
        assert (await call(mesh, "default", "catalog"))[0] == 200
        assert (await call(mesh, "default", "catalog.foo"))[0] == 418  # exported everywhere by default
    finally:
        await clear(mesh)


async def test_export_to_dot_hides_a_virtual_service_from_other_namespaces(mesh):
    try:
        await mesh.apply(catalog_vs("default", export_to=["."]))
        assert (await call(mesh, "default", "catalog"))[0] == 418
        # foo's proxies do not see it: they route default's catalog plainly.
        assert await call(mesh, "foo", "catalog.default.svc.cluster.local") == (200, mesh.catalog["default"].name)
        # Exported to foo by name, the same VirtualService applies there too.
        await mesh.apply(catalog_vs("default", export_to=[".", "foo"]))
        assert (await call(mesh, "foo", "catalog.default.svc.cluster.local"))[0] == 418
    finally:
        await clear(mesh)


async def plaintext_ok(instance) -> bool:
    """A plaintext request straight to the instance's inbound: answered (PERMISSIVE) or refused (STRICT)."""
    try:
        async with client_session() as http, http.get(instance.sidecar.inbound + "/items") as r:
            return r.status == 200
    except (aiohttp.ClientError, OSError):
        return False


async def test_a_selector_less_peer_authentication_covers_its_namespace_only(mesh):
    try:
        await mesh.apply(peer_authentication("foo", "STRICT"))
        assert not await plaintext_ok(mesh.catalog["foo"])
        assert await plaintext_ok(mesh.catalog["default"])  # a policy in foo is not mesh-wide
        # mTLS between sidecars still works into foo.
        assert (await call(mesh, "default", "catalog.foo"))[0] == 200
    finally:
        await clear(mesh)


async def test_a_root_namespace_peer_authentication_is_mesh_wide(mesh):
    try:
        await mesh.apply(peer_authentication("istio-system", "STRICT"))
        assert not await plaintext_ok(mesh.catalog["foo"])
        assert not await plaintext_ok(mesh.catalog["default"])
        # A namespace's own policy beats the mesh-wide one.
        await mesh.apply(peer_authentication("default", "PERMISSIVE"))
        assert await plaintext_ok(mesh.catalog["default"])
        assert not await plaintext_ok(mesh.catalog["foo"])
    finally:
        await clear(mesh)


async def test_telemetry_names_a_service_of_another_namespace_with_its_namespace(mesh):
    # Two catalogs, one name: telemetry says 'catalog' for default's (as every lesson shows it) and
    # 'catalog.foo' for foo's, in the access log, /metrics, the control plane's stat and its status.
    async def get(namespace, host):
        async with client_session() as http:
            url = f"http://{host}/items?telemetry-names={namespace}"
            async with http.get(url, proxy=mesh.caller[namespace].sidecar.outbound) as r:
                assert r.status == 200, await r.text()
    for namespace, host in (("default", "catalog"), ("default", "catalog.foo"), ("foo", "catalog")):
        await get(namespace, host)

    def lines(instance, reporter):
        return [e for e in instance.sidecar.access_log()
                if e.get("reporter") == reporter and "telemetry-names=" in (e.get("path") or "")]

    async def logged():
        out = lines(mesh.caller["default"], "outbound"), lines(mesh.caller["foo"], "outbound")
        inbound = lines(mesh.catalog["foo"], "inbound"), lines(mesh.catalog["default"], "inbound")
        return (out, inbound) if len(out[0]) == 2 and len(out[1]) == 1 and len(inbound[0]) == 2 else None
    (from_default, from_foo), (at_foo, at_default) = await wait_for(logged, 10, what="the access-log lines")
    named = lambda e: (e["service"], e["namespace"], e["destination"], e["destination_namespace"])  # noqa: E731
    assert sorted(map(named, from_default)) == [("pricing", "default", "catalog", "default"),
                                                ("pricing", "default", "catalog.foo", "foo")]
    assert list(map(named, from_foo)) == [("pricing.foo", "foo", "catalog.foo", "foo")]
    assert {named(e) for e in at_foo} == {("catalog.foo", "foo", "catalog.foo", "foo")}
    # The caller as the callee saw it (its certificate's namespace): default's pricing and foo's.
    assert sorted(e["peer"].split(";")[0] for e in at_foo) == ["pricing", "pricing.foo"]
    assert [named(e) for e in at_default] == [("catalog", "default", "catalog", "default")]

    # /metrics of default's caller: one series per catalog.
    async with client_session() as http, http.get(mesh.caller["default"].sidecar.admin + "/metrics") as r:
        metrics = await r.text()
    destinations = {s.labels["destination_service"] for f in text_string_to_metric_families(metrics)
                    if f.name == "minimesh_requests" for s in f.samples if s.labels.get("reporter") == "source"}
    assert {"catalog", "catalog.foo"} <= destinations, destinations

    # The control plane's rollups: two catalog rows, each with its one meshed instance, and edges apart.
    async def stat():
        _, body = await mesh.cp("GET", "/v1/stat?window=60")
        rows = {(w["service"], w["version"]): w["meshed"] for w in body["workloads"]}
        edges = {(e["source"]["service"], e["destination"]["service"]) for e in body["edges"]}
        wanted = {("pricing", "catalog"), ("pricing", "catalog.foo"), ("pricing.foo", "catalog.foo")}
        return (rows, edges) if wanted <= edges and ("catalog.foo", "v1") in rows else None
    rows, edges = await wait_for(stat, 10, what="the stat's rows for both catalogs")
    assert rows[("catalog", "v1")] == 1 and rows[("catalog.foo", "v1")] == 1, rows
    _, status = await mesh.cp("GET", "/v1/status")
    assert {(p["service"], p["namespace"]) for p in status["proxies"] if p["kind"] == "sidecar"} == {
        ("catalog", "default"), ("catalog", "foo"), ("pricing", "default"), ("pricing", "foo")}
