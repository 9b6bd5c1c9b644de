"""The inbound hop to our own app, and Istio's default inbound retry.

Since 1.24 Istio gives every sidecar's inbound route a retry policy of its
own (istio/istio pilot/pkg/networking/core/route/route.go,
BuildDefaultHTTPInboundRoute; feature flag ENABLE_INBOUND_RETRY_POLICY, on
by default, gone from 1.27 when it became unconditional):

    retry_on: reset-before-request    num_retries: 2    no per-try timeout, Envoy's backoff

"reset-before-request" is Envoy's condition for a failure that happened
before any byte of the request went out, so the app never saw it and
retrying is safe even for a POST: here that is a connect failure (the app is
restarting, or not listening yet). A connection found closed when reused is
re-sent by the pool itself (transport/pool.py); a request whose bytes
reached the app and was then reset (UC) is not retried, nor is any answer
the app gave, 503 included. Between tries Envoy's fully jittered backoff
(25 ms base, outbound/retry.py's `backoff`). Giving up after the retries is
503 with Envoy's flags URX (the retry limit was reached) and UF.

Istio 1.26 and later leave gRPC ports without this policy; minimesh's app
port has no protocol of its own (it is HTTP/1.1), so the policy always applies.
Istio's inbound cluster has no practical circuit-breaker limits (max_retries
is 2^32 - 1), so no breaker or retry budget stands in the way either.

The decision is outbound/retry.py's `should_retry`, on the same policy type
(config HTTPRetry). The one-try path costs what the plain forward did: one
`try` around the send, no attempt record and no clock read. So the access log
lists the inbound's tries only when it retried; the first try is then timed
from the request's arrival.
"""

from __future__ import annotations

import asyncio
import random

from minimesh.config.virtualservice import HTTPRetry
from minimesh.errors import MeshError, UpstreamConnectFailure
from minimesh.proxy.message import Attempt, Request, Response
from minimesh.proxy.outbound.retry import FAILURE_OF, Outcome, backoff, finish_attempt, should_retry
from minimesh.proxy.transport.pool import UpstreamPool

INBOUND_RETRY = HTTPRetry(attempts=2, per_try_timeout=None, retry_on=("reset-before-request",))


def resendable(request: Request) -> bool:
    """Can the request go out again? A body held in full, or a stream nobody has started reading."""
    body = request.body
    return isinstance(body, bytes) or not body.taken


class ToApp:
    """Layer: send the request to the app on loopback (plaintext), retrying as Istio's inbound route does."""

    def __init__(self, pool: UpstreamPool, sleep=asyncio.sleep, rand: random.Random = random):
        self.pool = pool
        self.sleep = sleep
        self.rand = rand

    async def __call__(self, request: Request) -> Response:
        try:
            return await self.pool.send(request.journey.endpoint, request)
        except UpstreamConnectFailure as error:
            return await self._retry(request, error)

    async def _retry(self, request: Request, error: MeshError) -> Response:
        journey = request.journey
        endpoint = journey.endpoint
        first = Attempt(endpoint, started=journey.started)
        finish_attempt(first, journey, journey.started, error=error)
        journey.attempts.append(first)
        policy = INBOUND_RETRY
        retry_number = 0
        while True:
            retriable = should_retry(policy, Outcome(failure=FAILURE_OF.get(type(error))))
            if not retriable or retry_number >= policy.attempts or not resendable(request):
                break
            retry_number += 1
            await self.sleep(backoff(retry_number, self.rand, policy.backoff))
            attempt = Attempt(endpoint)
            journey.attempts.append(attempt)
            try:
                response = await self.pool.send(endpoint, request)
            except MeshError as e:
                finish_attempt(attempt, journey, attempt.started, error=e)
                error = e
                continue
            finish_attempt(attempt, journey, attempt.started, status=response.status)
            return response
        if retriable and retry_number:
            journey.flag("URX")  # Envoy: the retry limit was reached on a failure worth retrying
        raise error
