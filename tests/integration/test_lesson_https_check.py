"""A lesson check over https: `send: {scheme: https, host, ca}` speaks TLS as `curl --cacert CA` would.

A real TLS server on port 0 (aiohttp, with a learner's certificate for
shop.example.com): the check's traffic must send that name as SNI and Host,
verify the server against the lesson's CA file — and get no answer at all
(status 0, `no_answer`) from a server whose certificate that CA did not sign.
"""

import ssl

import pytest
from aiohttp import web

from minimesh.errors import ConfigError, UserError
from minimesh.lesson.check import judge
from minimesh.lesson.steps import parse_steps
from minimesh.lesson.traffic import send_traffic
from tests.support.certs import learner_certificate

pytestmark = pytest.mark.timeout(30)


async def tls_server(cert: bytes, key: bytes, tmp_path):
    seen = []

    async def hello(request):
        seen.append(request.host)
        return web.json_response({"service": "web"})

    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    ctx.sni_callback = lambda _obj, name, _ctx: seen.append(f"sni {name}")
    app = web.Application()
    app.router.add_get("/api/products", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    return runner, f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", seen


def https_step(tmp_path, ca: bytes):
    (tmp_path / "shop-ca.crt").write_bytes(ca)
    (step,) = parse_steps([{"name": "tls", "checks": [{
        "send": {"scheme": "https", "host": "shop.example.com", "ca": "shop-ca.crt", "path": "/api/products",
                 "count": 3},
        "expect": {"success_rate": {"min": 1.0}}}]}], lesson_dir=tmp_path, source="lesson.yaml")
    return step.checks[0].send


async def test_an_https_check_verifies_against_the_lessons_ca_with_sni_and_host(tmp_path):
    ca, cert, key = learner_certificate(["shop.example.com"])
    runner, url, seen = await tls_server(cert, key, tmp_path)
    try:
        traffic = await send_traffic("http://127.0.0.1:1", https_step(tmp_path, ca), https_url=url)
        assert [a.status for a in traffic.answers] == [200, 200, 200]
        assert seen[:2] == ["sni shop.example.com", "shop.example.com"]  # the SNI, then the Host
        # Another CA signed the server's certificate: no HTTP answer at all, as curl --cacert would fail.
        other_ca, _, _ = learner_certificate(["shop.example.com"])
        refused = await send_traffic("http://127.0.0.1:1", https_step(tmp_path, other_ca), https_url=url)
        assert [a.status for a in refused.answers] == [0, 0, 0]
        assert "CERTIFICATE_VERIFY_FAILED" in refused.answers[0].error
        assert judge("no_answer", {"min": 1.0}, refused, None).ok
        assert not judge("no_answer", {"min": 1.0}, traffic, None).ok
    finally:
        await runner.cleanup()


async def test_without_the_gateways_https_url_the_check_says_how_to_give_it(tmp_path):
    ca, _, _ = learner_certificate(["shop.example.com"])
    with pytest.raises(UserError, match="--gateway-https"):
        await send_traffic("http://127.0.0.1:1", https_step(tmp_path, ca), https_url=None)


@pytest.mark.parametrize("send,field", [
    ({"scheme": "https", "host": "shop.example.com"}, "steps.0.checks.0.send"),
    ({"scheme": "https", "host": "shop.example.com", "ca": "missing.crt"}, "steps.0.checks.0.send.ca"),
    ({"scheme": "ftp"}, "steps.0.checks.0.send.scheme"),
])
def test_an_https_send_needs_a_host_and_a_ca_file(tmp_path, send, field):
    with pytest.raises(ConfigError) as caught:
        parse_steps([{"name": "tls", "checks": [{"send": send, "expect": {"success_rate": {"min": 1}}}]}],
                    lesson_dir=tmp_path, source="lesson.yaml")
    assert caught.value.field == field
