"""Retry policy (should_retry, backoff) and the Retry / RouteTimeout layers with a fake upstream.

No test here really sleeps: the Retry layer gets an injected sleep that only
records what it was asked to wait; per-try and route timeouts use tiny real
limits against an upstream that never answers.
"""

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from minimesh.config import DEFAULT_RETRY, HTTPRetry, parse_resource
from minimesh.errors import UpstreamConnectFailure, UpstreamReset, UpstreamTimeout
from minimesh.proxy.message import Journey, Request, Response
from minimesh.proxy.outbound.retry import Outcome, Retry, backoff, should_retry
from minimesh.proxy.outbound.route import default_route
from minimesh.proxy.outbound.timeout import RouteTimeout

from .manifests import route, vs_doc


def policy(retry_on: str, attempts: int = 3) -> HTTPRetry:
    """The policy the config layer builds from `retries: {attempts, retryOn}`."""
    doc = vs_doc("svc", route("r", retries={"attempts": attempts, "retryOn": retry_on}))
    return parse_resource(doc).http[0].retries


S = lambda code, grpc=None: Outcome(status=code, grpc_status=grpc)  # noqa: E731
F = lambda kind: Outcome(failure=kind)  # noqa: E731


@pytest.mark.parametrize("retry_on,outcome,expected", [
    # 5xx: any 5xx answer, and every failure without an answer
    ("5xx", S(500), True), ("5xx", S(503), True), ("5xx", S(599), True),
    ("5xx", S(404), False), ("5xx", S(200), False), ("5xx", S(409), False),
    ("5xx", F("connect-failure"), True), ("5xx", F("reset"), True),
    ("5xx", F("refused-stream"), True), ("5xx", F("timeout"), True),
    # gateway-error: 502, 503, 504 only; a per-try timeout counts as 504
    ("gateway-error", S(502), True), ("gateway-error", S(503), True), ("gateway-error", S(504), True),
    ("gateway-error", S(500), False), ("gateway-error", S(501), False),
    ("gateway-error", F("timeout"), True), ("gateway-error", F("connect-failure"), True),
    # Envoy counts a reset as a 5xx, which gateway-error retries as well.
    ("gateway-error", F("reset"), True), ("gateway-error", F("refused-stream"), True),
    # connect-failure: nothing else
    ("connect-failure", F("connect-failure"), True), ("connect-failure", F("reset"), False),
    ("connect-failure", S(503), False), ("connect-failure", F("timeout"), False),
    # reset: the upstream closed or reset before answering
    ("reset", F("reset"), True), ("reset", F("connect-failure"), True), ("reset", S(503), False),
    ("reset", F("timeout"), True),  # Envoy: "does not respond at all (disconnect/reset/read timeout)"
    # retriable-headers: the answer has a header the request named in x-envoy-retriable-header-names
    ("retriable-headers", Outcome(status=200, retriable_header=True), True),
    ("retriable-headers", Outcome(status=500), False),
    # refused-stream
    ("refused-stream", F("refused-stream"), True), ("refused-stream", F("reset"), False),
    ("refused-stream", S(503), False),
    # retriable-4xx is 409 only
    ("retriable-4xx", S(409), True), ("retriable-4xx", S(400), False), ("retriable-4xx", S(429), False),
    ("retriable-4xx", S(503), False),
    # bare status codes in retryOn (Istio adds retriable-status-codes for them)
    ("503", S(503), True), ("503", S(502), False), ("429,503", S(429), True),
    ("retriable-status-codes,418", S(418), True), ("retriable-status-codes,418", S(419), False),
    ("503", F("connect-failure"), False),
    # gRPC conditions read the grpc-status header of an answer
    ("unavailable", S(200, "14"), True), ("unavailable", S(200, "4"), False),
    ("cancelled", S(200, "1"), True), ("deadline-exceeded", S(200, "4"), True),
    ("resource-exhausted", S(200, "8"), True), ("internal", S(200, "13"), True),
    ("internal", S(200, None), False), ("unavailable", S(503), False),
    # combined conditions are ORed
    ("connect-failure,5xx", S(500), True), ("gateway-error,retriable-4xx", S(409), True),
    # reset-before-request: only while no byte of the request went out — a connect failure here
    ("reset-before-request", F("connect-failure"), True), ("reset-before-request", F("reset"), False),
    ("reset-before-request", F("timeout"), False), ("reset-before-request", S(503), False),
    # envoy-ratelimited: an answer with x-envoy-ratelimited, and such an answer under no other condition
    ("envoy-ratelimited", Outcome(status=429, ratelimited=True), True),
    ("envoy-ratelimited", S(429), False), ("envoy-ratelimited", S(503), False),
    ("5xx", Outcome(status=503, ratelimited=True), False),
    ("gateway-error,429", Outcome(status=429, ratelimited=True), False),
    ("5xx,envoy-ratelimited", Outcome(status=503, ratelimited=True), True),
])
def test_should_retry(retry_on, outcome, expected):
    assert should_retry(policy(retry_on), outcome) is expected


@pytest.mark.parametrize("outcome,expected", [
    # Istio >= 1.24: a 503 from the app is NOT retried by default (PR 52111).
    (F("connect-failure"), True), (S(503), False), (S(500), False), (S(502), False),
    (F("reset"), False), (F("timeout"), False), (S(200, "14"), True), (S(200, "1"), True),
])
def test_istio_default_retry_policy(outcome, expected):
    assert should_retry(DEFAULT_RETRY, outcome) is expected


@given(n=st.integers(min_value=0, max_value=64), seed=st.integers(min_value=0, max_value=2**32))
def test_backoff_is_fully_jittered_and_capped(n, seed):
    wait = backoff(n, random.Random(seed))
    assert 0 <= wait <= min(0.25, 0.025 * (2 ** n - 1))


def test_backoff_really_jitters():
    rand = random.Random(3)
    waits = [backoff(3, rand) for _ in range(200)]
    assert max(waits) > 0.1 and min(waits) < 0.05  # spread over [0, 0.175]


# --- the Retry layer -------------------------------------------------------------------------


class FakeUpstream:
    """Answers each attempt from a script: an int is a status, an exception class is raised.

    Each call names a different endpoint, as the balancer would on a retry.
    """

    def __init__(self, *script):
        self.script = list(script)
        self.calls = 0

    async def __call__(self, request: Request) -> Response:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        request.journey.endpoint = f"127.0.0.1:{7000 + self.calls}"
        if isinstance(step, type):
            raise step(f"scripted {step.__name__}")
        return Response(step, CIMultiDict(), b"")


class Sleeps:
    def __init__(self):
        self.waits: list[float] = []

    async def __call__(self, seconds):
        self.waits.append(seconds)


def make_request(http_route, body=b"{}") -> Request:
    journey = Journey("outbound")
    journey.http_route = http_route
    journey.route = "r"
    return Request("POST", "/pay", "payments", CIMultiDict(), body, journey=journey)


def vs_route(**extra):
    return parse_resource(vs_doc("svc", route("r", **extra))).http[0]


async def run_retry(http_route, upstream, body=b"{}"):
    sleeps = Sleeps()
    request = make_request(http_route, body)
    layer = Retry(upstream, sleep=sleeps, rand=random.Random(1))
    try:
        response, error = await layer(request), None
    except UpstreamTimeout as e:
        response, error = None, e
    except (UpstreamConnectFailure, UpstreamReset) as e:
        response, error = None, e
    return request.journey, response, error, sleeps


@pytest.mark.parametrize("script,attempts,retry_on,calls,status,urx", [
    ((503, 503, 200), 5, "5xx", 3, 200, False),       # retried until it worked
    ((503,), 2, "5xx", 3, 503, True),                 # gave up after 1 + 2 tries
    ((503,), 0, "5xx", 1, 503, False),                # attempts 0: no retry at all
    ((500,), 3, "gateway-error", 1, 500, False),      # 500 is not a gateway error
    ((200,), 3, "5xx", 1, 200, False),                # success: one try
    ((409, 200), 3, "retriable-4xx", 2, 200, False),
    ((404,), 3, "5xx", 1, 404, False),
])
async def test_retry_counts_attempts(script, attempts, retry_on, calls, status, urx):
    upstream = FakeUpstream(*script)
    journey, response, error, sleeps = await run_retry(vs_route(retries={"attempts": attempts, "retryOn": retry_on}),
                                                       upstream)
    assert error is None
    assert (upstream.calls, response.status) == (calls, status)
    assert len(journey.attempts) == calls
    assert [a.status for a in journey.attempts] == list(script[:calls]) + [script[-1]] * (calls - len(script))
    assert ("URX" in journey.flags) is urx
    assert len(sleeps.waits) == calls - 1
    assert all(0 <= w <= min(0.25, 0.025 * (2 ** (i + 1) - 1)) for i, w in enumerate(sleeps.waits))


async def test_each_attempt_records_its_endpoint():
    upstream = FakeUpstream(503, 503, 200)
    journey, *_ = await run_retry(vs_route(retries={"attempts": 3, "retryOn": "5xx"}), upstream)
    assert [a.endpoint for a in journey.attempts] == ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]


async def test_connect_failures_exhaust_retries_and_raise_with_urx():
    upstream = FakeUpstream(UpstreamConnectFailure)
    journey, response, error, _ = await run_retry(vs_route(retries={"attempts": 2, "retryOn": "connect-failure"}),
                                                  upstream)
    assert isinstance(error, UpstreamConnectFailure) and response is None
    assert upstream.calls == 3
    assert "URX" in journey.flags
    assert all(a.error.startswith("UF:") for a in journey.attempts)


async def test_reset_is_not_retried_when_retry_on_does_not_cover_it():
    upstream = FakeUpstream(UpstreamReset, 200)
    journey, response, error, _ = await run_retry(vs_route(retries={"attempts": 3, "retryOn": "connect-failure"}),
                                                  upstream)
    assert isinstance(error, UpstreamReset) and upstream.calls == 1
    assert "URX" not in journey.flags


async def test_default_route_does_not_retry_503_but_retries_connect_failures_twice():
    upstream = FakeUpstream(503)
    journey, response, _, _ = await run_retry(default_route("payments"), upstream)
    assert (upstream.calls, response.status) == (1, 503)
    upstream = FakeUpstream(UpstreamConnectFailure, UpstreamConnectFailure, UpstreamConnectFailure)
    journey, response, error, _ = await run_retry(default_route("payments"), upstream)
    assert isinstance(error, UpstreamConnectFailure) and upstream.calls == 3 and "URX" in journey.flags


async def test_vs_route_without_retries_block_gets_istio_default_retries():
    """Istio: an http route with no `retries` block still retries twice on connect-failure (not 503)."""
    upstream = FakeUpstream(UpstreamConnectFailure, 200)
    journey, response, _, _ = await run_retry(vs_route(), upstream)
    assert (upstream.calls, response.status) == (2, 200)


async def test_giving_up_on_a_non_retriable_answer_is_not_urx():
    """URX means the retry *limit* was reached; here a later answer was simply not retriable."""
    upstream = FakeUpstream(503, 500)
    journey, response, _, _ = await run_retry(vs_route(retries={"attempts": 5, "retryOn": "503"}), upstream)
    assert (upstream.calls, response.status) == (2, 500)
    assert "URX" not in journey.flags


async def test_streaming_body_is_never_retried():
    async def stream():
        yield b"chunk"

    upstream = FakeUpstream(503, 200)
    journey, response, _, sleeps = await run_retry(vs_route(retries={"attempts": 5, "retryOn": "5xx"}),
                                                   upstream, body=stream())
    assert (upstream.calls, response.status) == (1, 503)
    assert sleeps.waits == [] and "URX" not in journey.flags


class Discarded(FakeUpstream):
    """Tracks that a failed attempt's response is released before the retry."""

    def __init__(self, *script):
        super().__init__(*script)
        self.released = 0

    async def __call__(self, request):
        response = await super().__call__(request)

        async def release():
            self.released += 1

        response.release = release
        return response


async def test_a_retried_response_is_released():
    upstream = Discarded(503, 503, 200)
    _, response, _, _ = await run_retry(vs_route(retries={"attempts": 3, "retryOn": "5xx"}), upstream)
    assert upstream.released == 2 and response.status == 200


# --- per-try and route timeouts (tiny real limits, an upstream that never answers) -----------


class Hangs:
    """An upstream that answers only from `answer_from` on (call numbers from 1); before that it hangs."""

    def __init__(self, answer_from: int | None = None):
        self.answer_from = answer_from
        self.calls = 0
        self.never = asyncio.Event()

    async def __call__(self, request):
        self.calls += 1
        request.journey.endpoint = f"127.0.0.1:{7000 + self.calls}"
        if self.answer_from is None or self.calls < self.answer_from:
            await self.never.wait()
        return Response(200, CIMultiDict(), b"ok")


async def test_per_try_timeout_gives_up_each_attempt_and_retries():
    upstream = Hangs(answer_from=3)
    journey, response, error, sleeps = await run_retry(
        vs_route(retries={"attempts": 3, "perTryTimeout": "0.02s", "retryOn": "5xx"}), upstream)
    assert error is None and response.status == 200
    assert upstream.calls == 3
    assert [a.error is not None and a.error.startswith("UT:") for a in journey.attempts] == [True, True, False]


async def test_per_try_timeout_exhausted_is_504_from_the_retry_layer():
    upstream = Hangs()
    journey, response, error, _ = await run_retry(
        vs_route(retries={"attempts": 1, "perTryTimeout": "0.02s", "retryOn": "gateway-error"}), upstream)
    assert isinstance(error, UpstreamTimeout) and error.status == 504 and error.layer == "retry"
    assert upstream.calls == 2 and "URX" in journey.flags


async def test_route_timeout_bounds_the_whole_request():
    upstream = Hangs()
    request = make_request(vs_route(timeout="0.03s"))
    with pytest.raises(UpstreamTimeout) as caught:
        await RouteTimeout(upstream)(request)
    assert caught.value.flag == "UT" and caught.value.layer == "timeout" and "0.03s" in caught.value.reason


async def test_route_timeout_covers_retries():
    # Per-try 20 ms, many attempts, route timeout 50 ms: the route gives up first.
    upstream = Hangs()
    request = make_request(vs_route(timeout="0.05s", retries={"attempts": 50, "perTryTimeout": "0.02s",
                                                                "retryOn": "5xx"}))
    stack = RouteTimeout(Retry(upstream, sleep=Sleeps(), rand=random.Random(1)))
    with pytest.raises(UpstreamTimeout) as caught:
        await stack(request)
    assert caught.value.layer == "timeout"
    assert 2 <= upstream.calls < 50


async def test_no_route_timeout_passes_through():
    request = make_request(vs_route())
    response = await RouteTimeout(FakeUpstream(200))(request)
    assert response.status == 200
