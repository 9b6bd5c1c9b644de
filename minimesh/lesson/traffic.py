"""Sending a lesson's traffic through the gateway, and what came back.

Each answer records its status, how long it took, and who served it — the
demo shop names itself in every JSON answer (`service`, `version`,
`instance`, and `upstreams` for web), which is all a check needs to see load
balancing, canaries and retries from the outside.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field

import aiohttp

from minimesh.errors import UserError
from minimesh.lesson.steps import Send
from minimesh.runner.ports import GATEWAY_HTTPS_PORT


@dataclass
class Answer:
    status: int
    latency_ms: float
    body: dict | None = None
    error: str | None = None

    def served_by(self, service: str) -> str | None:
        """The instance of `service` that answered (directly, or as one of web's upstreams)."""
        who = self._answer_of(service)
        return who.get("instance") if who else None

    def version_of(self, service: str) -> str | None:
        """The version of `service` that answered (the canary lesson's question)."""
        who = self._answer_of(service)
        return who.get("version") if who else None

    def _answer_of(self, service: str) -> dict | None:
        body = self.body or {}
        if body.get("service") == service:
            return body
        for upstream in body.get("upstreams") or []:
            if isinstance(upstream, dict) and upstream.get("service") == service:
                return upstream
        return None


@dataclass
class Traffic:
    answers: list[Answer] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return sum(1 for a in self.answers if 200 <= a.status < 400) / max(1, len(self.answers))

    def percentile_ms(self, p: float) -> float:
        latencies = sorted(a.latency_ms for a in self.answers)
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0


async def send_traffic(gateway_url: str, send: Send, https_url: str | None = None) -> Traffic:
    """Send `send.count` requests with `send.concurrency` in flight at most.

    With `send.scheme` https they go to the gateway's HTTPS port (`https_url`)
    as `curl --cacert CA https://HOST/...` would: SNI and Host are `send.host`,
    and the gateway's certificate must verify against the CA for that name.
    """
    traffic = Traffic()
    headers = dict(send.headers)
    if send.host:
        headers["Host"] = send.host
    tls = None
    if send.scheme == "https":
        if not https_url:
            raise UserError("this check speaks https to the gateway, whose HTTPS URL is not known: pass "
                            f"--gateway-https URL (compose: https://127.0.0.1:{GATEWAY_HTTPS_PORT})")
        gateway_url = https_url
        tls = {"ssl": ssl.create_default_context(cafile=str(send.ca)), "server_hostname": send.host}
    todo = iter(range(send.count))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
        if send.token:
            headers["Authorization"] = "Bearer " + await fetch_token(session, gateway_url, *send.token)

        async def worker():
            for _ in todo:
                traffic.answers.append(await _one(session, gateway_url, send, headers, tls or {}))
        await asyncio.gather(*(worker() for _ in range(send.concurrency)))
    return traffic


async def fetch_token(session, gateway_url: str, host: str, path: str) -> str:
    """A JWT from the lesson's issuer, through the gateway as a learner's curl would get it."""
    async with session.get(gateway_url.rstrip("/") + path, headers={"Host": host}) as resp:
        text = (await resp.text()).strip()
        if resp.status != 200 or text.count(".") != 2:
            raise UserError(f"could not get a token from {host}{path} through the gateway: "
                            f"{resp.status} {text[:120]!r}")
        return text


async def _one(session, gateway_url: str, send: Send, headers: dict, tls: dict) -> Answer:
    start = time.perf_counter()
    try:
        async with session.request(send.method, gateway_url.rstrip("/") + send.path,
                                   headers=headers, json=send.json, **tls) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        # What the socket or the TLS handshake said (aiohttp's own text names the SSLContext object).
        why = getattr(e, "certificate_error", None) or getattr(e, "os_error", None)
        what = f"{type(why).__name__}: {why}".rstrip(": ") if why is not None else (str(e) or type(e).__name__)
        return Answer(0, (time.perf_counter() - start) * 1000, error=what)
    latency = (time.perf_counter() - start) * 1000
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    return Answer(status, latency, body if isinstance(body, dict) else None)
