"""retryOn conditions with Envoy's meaning, through real sidecars and real sockets.

`quota` is a small app behind its own sidecar that answers each request's first
attempt with the status the path names (`/once/429/rl`: 429 with
`x-envoy-ratelimited`, as an upstream Envoy's rate limiter sends it;
`/once/503/plain`: a bare 503) and every later attempt with 200, counting the
attempts per `x-key`. The caller is `web`'s sidecar (its outbound listener,
the app's HTTP_PROXY). Each test applies quota's VirtualService and counts
what reached the app; `gone`, a registered instance whose sidecar is dead,
gives connect failures.
"""

import collections
import itertools

import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.echo import add_echo
from tests.support.manifests import virtual_service
from tests.support.mesh import client_session, run_mesh, start_sidecar
from tests.support.shop import free_port, serve_routes

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

_keys = itertools.count()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    attempts: collections.Counter = collections.Counter()

    async def once(request: web.Request) -> web.Response:
        key = request.headers["x-key"]
        attempts[key] += 1
        if attempts[key] > 1:
            return web.Response(text="ok")
        headers = {"x-envoy-ratelimited": "true"} if request.match_info["flag"] == "rl" else {}
        return web.Response(status=int(request.match_info["status"]), headers=headers, text="first")

    async with run_mesh(tmp_path_factory.mktemp("retry-conditions") / "home", ttl=30) as mesh:
        runner, port = await serve_routes(web.get("/once/{status}/{flag}", once))
        sidecar = await start_sidecar(mesh.control_url, "quota", port, "v1", "quota-v1-0", log_dir=mesh.log_dir)
        mesh.quota = sidecar
        mesh.attempts = attempts
        web_echo = await add_echo(mesh, "web", "v1")
        mesh.caller = web_echo.sidecar
        await mesh.converged()
        try:
            yield mesh
        finally:
            await sidecar.stop()
            await runner.cleanup()
            await web_echo.runner.cleanup()


async def call(mesh, path: str, host: str = "quota") -> tuple[int, int, str]:
    """(status, attempts the app saw, key) of one request through web's sidecar."""
    key = f"k{next(_keys)}"
    async with client_session() as http, http.get(f"http://{host}{path}", proxy=mesh.caller.outbound,
                                                  headers={"x-key": key}) as r:
        await r.read()
        return r.status, mesh.attempts[key], key


async def test_envoy_ratelimited_retries_an_answer_an_upstream_rate_limiter_marked(mesh):
    await mesh.apply(virtual_service("quota", retries={"attempts": 2, "retryOn": "envoy-ratelimited"}))
    # 429 with x-envoy-ratelimited: retried, and the second attempt gets through.
    status, attempts, _ = await call(mesh, "/once/429/rl")
    assert (status, attempts) == (200, 2)
    # The same 429 without the header is the app's own answer: envoy-ratelimited does not cover it.
    status, attempts, _ = await call(mesh, "/once/429/plain")
    assert (status, attempts) == (429, 1)


async def test_a_ratelimited_answer_is_retried_under_no_other_condition(mesh):
    # Envoy's rule: an answer with x-envoy-ratelimited is retried only under envoy-ratelimited,
    # even when it is a 503 and retryOn says 5xx (retrying a rate limit makes it worse).
    await mesh.apply(virtual_service("quota", retries={"attempts": 2, "retryOn": "5xx"}))
    status, attempts, _ = await call(mesh, "/once/503/rl")
    assert (status, attempts) == (503, 1)
    # The control: the bare 503 is retried under 5xx.
    status, attempts, _ = await call(mesh, "/once/503/plain")
    assert (status, attempts) == (200, 2)


async def test_reset_before_request_retries_a_connect_failure(mesh):
    # `gone` is registered, but its sidecar was SIGKILLed: every connection to it is refused,
    # before a byte of the request is sent — what reset-before-request retries (Envoy 1.31).
    gone = await start_sidecar(mesh.control_url, "gone", app_port=free_port(), instance="gone-v1-0",
                               log_dir=mesh.log_dir)
    gone.kill()  # no goodbye: the registry keeps it until its ttl (30 s here)
    await mesh.apply(virtual_service("gone", retries={"attempts": 2, "retryOn": "reset-before-request"}))
    status, _, _ = await call(mesh, "/once/200/plain", host="gone")
    assert status == 503
    [line] = [line for line in mesh.caller.access_log() if line["destination"] == "gone"]
    assert line["attempts"] == 3 and line["flags"] == "URX,UF", line
