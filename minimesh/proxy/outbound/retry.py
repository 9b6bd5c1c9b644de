"""Retries: try again when an attempt fails in a way worth trying again.

Istio's `retries` block says how many times (`attempts` — retries, not counting
the first try), how long each try may take (`perTryTimeout`), and on which
failures (`retryOn`, Envoy's retry conditions):

    5xx                     any 5xx answer, a reset, a connect failure, a per-try timeout
    gateway-error           502, 503, 504 (a per-try timeout counts as 504, a reset as 503)
    reset                   no answer at all: disconnect, reset, connect failure, per-try timeout
    reset-before-request    no answer, and no byte of the request sent: here that is a connect
                            failure (a reset or a per-try timeout comes after the request went out;
                            a pooled connection found closed is retried by the pool itself)
    connect-failure         no connection could be made
    refused-stream          the upstream refused the request before it was processed
    retriable-4xx           409
    retriable-status-codes  the status codes listed beside it (bare numbers in retryOn)
    retriable-headers       the answer carries a header the request named in
                            `x-envoy-retriable-header-names` (Envoy's request header)
    envoy-ratelimited       the answer carries `x-envoy-ratelimited` (an upstream Envoy's rate
                            limiter refused it) — and such an answer is retried under this
                            condition only, never under 5xx, 429 or any other (Envoy's rule)
    cancelled, deadline-exceeded, internal, resource-exhausted, unavailable
                            the gRPC status of the same name in the grpc-status header

With no `retries` block Istio (1.24 and later) retries twice on
connect-failure, refused-stream, unavailable and cancelled — never on a 503
the app sent (virtualservice.DEFAULT_RETRY). A retry prefers a host not tried
yet (`retryIgnorePreviousHosts`, default true; balancer.py). The inbound side
has a default of its own, reset-before-request twice (inbound/retry.py).

Between tries we wait a "fully jittered" exponential backoff, as Envoy does:
a random time in [0, base × (2^n − 1)], base 25 ms (or the route's
`backoff`), capped at 10 × base. Jitter keeps a crowd of retrying clients
from hammering an upstream in lockstep.

A retry only happens when the request body can be sent again (we hold it in
full), and when the destination's circuit breaker and retry budget
(breaker.py) have room for one more retry in flight. Note that a retry
re-sends a POST too when `retryOn` allows it: a mesh does not know whether the
app's operation is idempotent (lesson 02's break-it exercise).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from minimesh.errors import MeshError, UpstreamConnectFailure, UpstreamReset, UpstreamTimeout
from minimesh.proxy.message import Attempt, Request, Response, Service

BACKOFF_BASE = 0.025
RETRIABLE_HEADER_NAMES = "x-envoy-retriable-header-names"
RATELIMITED = "x-envoy-ratelimited"  # set by an Envoy rate limiter on its 429 (any upstream may send it)
GRPC_CONDITIONS = {"cancelled": "1", "deadline-exceeded": "4", "resource-exhausted": "8",
                   "unavailable": "14", "internal": "13"}


@dataclass(slots=True)
class Outcome:
    """How one attempt ended: an HTTP status, or a failure kind with no answer.

    Made once per attempt, so a plain slotted class: a frozen dataclass's
    __init__ costs four times as much.
    """

    status: int | None = None
    failure: str | None = None  # "connect-failure", "reset", "timeout"
    grpc_status: str | None = None
    retriable_header: bool = False  # the answer has a header the request listed as retriable
    ratelimited: bool = False  # the answer carries x-envoy-ratelimited


def should_retry(policy, outcome: Outcome) -> bool:
    """Pure decision: does the policy's `retryOn` cover this outcome?"""
    failure = outcome.failure
    if failure is not None:
        on = set(policy.retry_on)
        if failure == "connect-failure":  # the one failure where no byte of the request was sent
            return bool(on & {"5xx", "gateway-error", "connect-failure", "reset", "reset-before-request"})
        # Envoy counts an upstream reset as a 5xx (it becomes one), so both
        # 5xx and gateway-error retry it.
        if failure == "refused-stream":
            return bool(on & {"5xx", "gateway-error", "refused-stream", "reset"})
        if failure == "reset":
            return bool(on & {"5xx", "gateway-error", "reset"})
        if failure == "timeout":
            return bool(on & {"5xx", "gateway-error", "reset"})
    status = outcome.status
    if status is None:
        return False
    on = policy.retry_on  # every answer passes here: `in` on the short tuple, no set per request
    if outcome.ratelimited:  # Envoy's wouldRetryFromHeaders: this condition, or no retry at all
        return "envoy-ratelimited" in on
    if "retriable-headers" in on and outcome.retriable_header:
        return True
    if "5xx" in on and status >= 500:
        return True
    if "gateway-error" in on and status in (502, 503, 504):
        return True
    if "retriable-4xx" in on and status == 409:
        return True
    if "retriable-status-codes" in on and status in policy.retriable_status_codes:
        return True
    grpc = outcome.grpc_status
    return grpc is not None and any(grpc == code for name, code in GRPC_CONDITIONS.items() if name in on)


def backoff(retry_number: int, rand=random, base: float = BACKOFF_BASE) -> float:
    """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
    ceiling = min(10 * base, base * (2 ** retry_number - 1))
    return rand.random() * ceiling


def has_retriable_header(request_headers, response_headers) -> bool:
    names = request_headers.get(RETRIABLE_HEADER_NAMES)
    if not names:
        return False
    return any(name.strip() and name.strip() in response_headers for name in names.split(","))


FAILURE_OF = {UpstreamConnectFailure: "connect-failure", UpstreamReset: "reset", UpstreamTimeout: "timeout"}


class Retry:
    """Layer: run each attempt (with its per-try timeout) and retry as the policy says."""

    def __init__(self, inner: Service, sleep=asyncio.sleep, rand: random.Random = random, breakers=None):
        self.inner = inner
        self.sleep = sleep
        self.rand = rand
        self.breakers = breakers  # breaker.Breakers: maxRetries and the retry budget, per destination

    async def __call__(self, request: Request) -> Response:
        journey = request.journey
        policy = journey.http_route.retry_policy  # Istio's default when the route sets none
        retries_left = policy.attempts if request.replayable else 0
        retry_number = 0
        holding = False  # a retry slot of the destination's breaker, held for the retry in flight
        overflowed = False
        try:
            while True:
                attempt = Attempt(endpoint="")
                response, error, outcome = await self._attempt(request, policy, attempt)
                if holding:
                    self.breakers.retry_done(journey.cluster)
                    holding = False
                retriable = should_retry(policy, outcome)
                if retries_left <= 0 or not retriable:
                    break
                if self.breakers is not None and journey.cluster is not None:
                    holding, _ = self.breakers.try_retry(journey.cluster)
                    if not holding:  # maxRetries / retryBudget: the answer we have is the answer (Envoy: UO)
                        overflowed = True
                        journey.flag("UO")
                        break
                if response is not None:
                    await response.discard()
                retries_left -= 1
                retry_number += 1
                await self.sleep(backoff(retry_number, self.rand, policy.backoff))
        finally:
            if holding:
                self.breakers.retry_done(journey.cluster)
        if retry_number and retriable and not overflowed:
            journey.flag("URX")  # gave up on an answer worth retrying: the retry limit was reached
        if error is not None:
            raise error
        return response

    async def _attempt(self, request, policy, attempt):
        journey = request.journey
        journey.attempts.append(attempt)
        start = time.monotonic()  # not the loop's clock: get_running_loop() is a getpid() system call
        per_try = policy.per_try_timeout
        try:
            if per_try is None:  # Istio's default: no per-try timeout, and no timer to arm per request
                response = await self.inner(request)
            else:
                async with asyncio.timeout(per_try):
                    response = await self.inner(request)
        except TimeoutError as e:
            error = UpstreamTimeout(f"attempt timed out after {per_try:g}s (perTryTimeout)")
            error.layer = "retry"
            error.__cause__ = e
            finish_attempt(attempt, journey, start, error=error)
            return None, error, Outcome(failure="timeout")
        except MeshError as e:
            finish_attempt(attempt, journey, start, error=e)
            return None, e, Outcome(failure=FAILURE_OF.get(type(e)))
        finish_attempt(attempt, journey, start, status=response.status)
        return response, None, Outcome(status=response.status, grpc_status=response.headers.get("grpc-status"),
                                       retriable_header=has_retriable_header(request.headers, response.headers),
                                       ratelimited=RATELIMITED in response.headers)


def finish_attempt(attempt: Attempt, journey, start: float, status=None, error=None) -> None:
    """Write down how an attempt ended: where it went, its status or error, how long it took."""
    attempt.endpoint = journey.endpoint or ""
    attempt.status = status
    attempt.error = f"{error.flag}: {error.reason}" if error is not None else None
    attempt.duration_ms = (time.monotonic() - start) * 1000
