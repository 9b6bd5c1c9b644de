"""Attacks on the control plane's API, each refused while the shop keeps serving.

One shop (gateway → web → catalog, pricing; real processes, real TLS) for
the whole module; each test makes one attack from this machine, as the
security review did, against the control plane's real HTTPS address, and
asserts three things: the refusal (TLS failure, 401, 403, 400 or 413), that
200 of 200 shop requests through the gateway succeeded meanwhile, and —
where the attack tries to pull traffic — that the attacker's listener got
nothing.
"""

from __future__ import annotations

import pytest

from minimesh.pki.operator import VIEWER, credentials_dir, operator_context
from tests.security.attack import Trap, attack_on, call, client_tls, foreign_tls, rss_kib, workload_tls

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]


def ca_pem(shop) -> str:
    return (credentials_dir(shop.control.home) / "ca.pem").read_text()


def catalog_registration(address: str, **more) -> dict:
    return {"service": "catalog", "version": "v1", "instance": "catalog-fake", "kind": "sidecar",
            "addresses": {"inbound": address, "admin": address}, **more}


async def instances(shop) -> set[str]:
    status, body = await shop.cp("GET", "/v1/instances")
    assert status == 200
    return {i["instance"] for i in body["instances"]}


async def test_a_fake_registration_without_a_certificate_is_refused_and_gets_no_traffic(shop, tmp_path):
    trap = await Trap.open()
    url = shop.control.https_url
    try:
        async with attack_on(shop.gateway.listen) as during:
            # The review's attack: a catalog endpoint pointing at the attacker, claimed with and
            # without an identity, over TLS without a certificate, with a join token as a
            # bearer credential, and in plaintext.
            for body in (catalog_registration(trap.address),
                         catalog_registration(trap.address, identity="spiffe://cluster.local/ns/default/sa/catalog")):
                status, answer = await call(url, "POST", "/v1/register", client_tls(ca_pem(shop)), body=body)
                assert status == 401 and "client certificate" in answer["error"], answer
                status, answer = await call(url, "POST", "/v1/register", client_tls(ca_pem(shop)), body=body,
                                            headers={"Authorization": f"Bearer {shop.control.token('catalog')}"})
                assert status == 401, answer
            status, answer = await call(url.replace("https://", "http://"), "POST", "/v1/register", False,
                                        body=catalog_registration(trap.address))
            assert status in (0, 400), answer  # plaintext to a TLS port: no HTTP answer worth the name
            # Another CA's certificate for catalog: the handshake itself fails.
            status, answer = await call(url, "POST", "/v1/register",
                                        foreign_tls(ca_pem(shop), tmp_path, "catalog"),
                                        body=catalog_registration(trap.address))
            assert status == 0, answer
        assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
        assert "catalog-fake" not in await instances(shop)
        assert trap.connections == 0
    finally:
        trap.close()


async def test_a_workload_cannot_register_or_poison_another_service(shop, tmp_path):
    trap = await Trap.open()
    url = shop.control.https_url
    web = workload_tls(shop.control.home, tmp_path, "web")  # a compromised web sidecar's certificate
    try:
        async with attack_on(shop.gateway.listen) as during:
            status, answer = await call(url, "POST", "/v1/register", web, body=catalog_registration(trap.address))
            assert status == 403 and "'web' only" in answer["error"], answer
            # As itself, but claiming catalog's identity: refused too (admission names the field).
            body = {**catalog_registration(trap.address), "service": "web", "instance": "web-fake",
                    "identity": "spiffe://cluster.local/ns/default/sa/catalog"}
            status, answer = await call(url, "POST", "/v1/register", web, body=body)
            assert status == 400 and "register: identity" in answer["error"], answer
            # Taking over a real catalog instance's name (as a web instance): refused. (Two instances
            # of one service share one identity, as pods of one service account do in Istio.)
            real = next(i.name for i in shop.instances if i.service == "catalog")
            body = {**catalog_registration(trap.address), "service": "web", "instance": real}
            status, answer = await call(url, "POST", "/v1/register", web, body=body)
            assert status == 403 and "belongs to another workload" in answer["error"], answer
        assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
        assert not {"catalog-fake", "web-fake"} & await instances(shop)
        assert trap.connections == 0
    finally:
        trap.close()


async def test_nobody_but_the_owner_deregisters_an_instance(shop, tmp_path):
    url = shop.control.https_url
    catalog = next(i.name for i in shop.instances if i.service == "catalog")
    async with attack_on(shop.gateway.listen) as during:
        status, _ = await call(url, "DELETE", f"/v1/instances/{catalog}", client_tls(ca_pem(shop)))
        assert status == 401
        status, answer = await call(url, "DELETE", f"/v1/instances/{catalog}",
                                    workload_tls(shop.control.home, tmp_path, "web"))
        assert status == 403 and "another workload" in answer["error"], answer
        status, answer = await call(url, "DELETE", f"/v1/instances/{catalog}", operator_context("viewer", shop.control.home))
        assert status == 403 and VIEWER in answer["error"], answer
    assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
    assert catalog in await instances(shop)


async def test_forged_telemetry_is_refused(shop, tmp_path):
    url = shop.control.https_url
    forged = {"node": "payments-v1-0", "events": [{
        "reporter": "inbound", "service": "payments", "version": "v1", "instance": "payments-v1-0",
        "status": 500, "duration_ms": 1.0, "trace_id": "ab" * 16, "span_id": "cd" * 8}],
        "tallies": [{"key": ["workload", "payments", "v1"], "requests": 1000, "ok": 0, "attempts": 1000,
                     "attempts_ok": 0, "mtls": 0, "latency": []}]}
    async with attack_on(shop.gateway.listen) as during:
        status, _ = await call(url, "POST", "/v1/telemetry", client_tls(ca_pem(shop)), body=forged)
        assert status == 401
        status, answer = await call(url, "POST", "/v1/telemetry", workload_tls(shop.control.home, tmp_path, "web"),
                                    body=forged)
        assert status == 403 and "reports only for 'web'" in answer["error"], answer
    assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
    status, stat = await shop.cp("GET", "/v1/stat?window=60")
    assert status == 200 and "payments" not in str(stat)


async def test_reads_need_a_certificate_and_changes_need_the_admin(shop):
    url = shop.control.https_url
    viewer = operator_context("viewer", shop.control.home)
    dr = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "catalog"},
          "spec": {"host": "catalog", "subsets": [{"name": "nope", "labels": {"version": "v9"}}]}}
    before = (await shop.cp("GET", "/v1/config"))[1]["version"]  # the shop's own (its Gateway) only
    async with attack_on(shop.gateway.listen) as during:
        for path in ("/v1/status", "/v1/config", "/v1/instances", "/v1/stat", "/v1/traces", "/v1/watch?node=x"):
            status, _ = await call(url, "GET", path, client_tls(ca_pem(shop)))
            assert status == 401, path
        status, body = await call(url, "GET", "/v1/status", viewer)
        assert status == 200 and body["proxies"]
        status, answer = await call(url, "POST", "/v1/config", viewer, body={"manifests": [dr]})
        assert status == 403 and "may not POST /v1/config" in answer["error"]
        status, _ = await call(url, "DELETE", "/v1/config/DestinationRule/catalog", viewer)
        assert status == 403
    assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
    assert (await shop.cp("GET", "/v1/config"))[1]["version"] == before


async def test_oversized_and_deeply_nested_bodies_cost_the_control_plane_nothing(shop):
    url = shop.control.https_url
    admin = operator_context("admin", shop.control.home)
    pid = shop.control.proc.pid
    big = b'{"manifests": [' + b'"x",' * (2 * 1024 * 1024 // 4) + b'"x"]}'  # 2 MiB
    nested = b"[" * 200_000 + b"]" * 200_000
    baseline = rss_kib(pid)
    async with attack_on(shop.gateway.listen) as during:
        # Without a certificate nothing is read at all.
        status, _ = await call(url, "POST", "/v1/config", client_tls(ca_pem(shop)), data=big,
                               headers={"content-type": "application/json"})
        assert status == 401
        for i in range(100):
            body = (big, nested, b"{" * 40 + b"}" * 40, b"not json")[i % 4]
            status, answer = await call(url, "POST", "/v1/config", admin, data=body,
                                        headers={"content-type": "application/json"})
            assert status == (413, 400, 400, 400)[i % 4], (i, status, answer)
        # A chunked body (no Content-Length) is cut off at the same limit while it is read.

        async def chunks():
            for _ in range(40):
                yield b"x" * 65536
        status, answer = await call(url, "POST", "/v1/config", admin, data=chunks())
        assert status == 413, answer
    assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
    grown = (rss_kib(pid) - baseline) / 1024
    print(f"control plane RSS: {baseline / 1024:.1f} MiB before, grew {grown:.1f} MiB after 100 bad bodies")
    assert grown < 20, f"RSS grew {grown:.1f} MiB"
    assert (await shop.cp("GET", "/v1/status"))[0] == 200


async def test_the_join_token_opens_only_the_signing_endpoint(shop):
    url = shop.control.https_url
    token = shop.control.token("catalog")
    anonymous = client_tls(ca_pem(shop))
    for method, path in (("GET", "/v1/status"), ("GET", "/v1/watch?node=catalog-x"), ("POST", "/v1/ack"),
                         ("POST", "/v1/config")):
        status, _ = await call(url, method, path, anonymous, body={},
                               headers={"Authorization": f"Bearer {token}"})
        assert status == 401, (method, path)


async def test_a_poisoned_registration_is_refused_by_field_and_never_reaches_a_sidecar(shop, tmp_path):
    url = shop.control.https_url
    poison = {"service": "catalog", "version": "v1", "instance": "catalog-poison", "kind": "sidecar",
              "addresses": {"inbound": "not-an-address"}}
    async with attack_on(shop.gateway.listen) as during:
        # Even the admin's word is checked; a compromised catalog sidecar's too.
        for tls in (operator_context("admin", shop.control.home), workload_tls(shop.control.home, tmp_path, "catalog")):
            status, answer = await call(url, "POST", "/v1/register", tls, body=poison)
            assert status == 400 and "addresses.inbound 'not-an-address'" in answer["error"], answer
        status, answer = await call(url, "POST", "/v1/register", operator_context("admin", shop.control.home),
                                    body={**poison, "addresses": {"inbound": "127.0.0.1:1"}, "labels": {"x" * 70: "y"}})
        assert status == 400 and "labels key" in answer["error"], answer
    assert during.all_ok(), (during.statuses.count(200), during.errors[:3])
    assert "catalog-poison" not in await instances(shop)
    # Nothing reached a sidecar: every proxy holds (ACKed, no NACK) the control plane's newest snapshot.
    await shop.converged()
    status, body = await shop.cp("GET", "/v1/status")
    assert status == 200 and not [p for p in body["proxies"] if p["nack_error"]], body
    # (A sidecar started with a poisoned entry in its snapshot is ready as fast as with a clean one:
    # tests/integration/test_sidecar_nack.py, where a fake control plane can send one.)
