"""The sidecar's calls to the control plane: JSON over HTTP(S), on the data plane's own client.

Registration and heartbeats, the watch long-poll and its ACKs (discovery.py),
certificate signing (identity.py) and telemetry batches (observe/export.py)
all go through one `ControlChannel`: a keep-alive pool of its own
(transport/pool.py, the same client the outbound uses) with the TLS context
that verifies the control plane by the mesh CA and presents our SVID.

Why not aiohttp, which the control plane and the CLI use: a sidecar runs
beside every app instance, and aiohttp with its dependencies is ~14 MB of
resident memory per process, for five kinds of small JSON call (issue 16).

Every failure — refused, reset, a TLS handshake that fails, no answer in
time, an answer that is not HTTP — is one `ControlCallFailed` naming the
call; an answer with an error status is an `Answer` like any other.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlencode, urlsplit

from multidict import CIMultiDict

from minimesh.errors import MeshError
from minimesh.proxy.message import Journey, Request
from minimesh.proxy.transport.pool import UpstreamPool

CONNECT_TIMEOUT = 2.0


class ControlCallFailed(Exception):
    """A call to the control plane got no HTTP answer (refused, reset, TLS, timeout)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self):
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class ControlChannel:
    def __init__(self, control_url: str, tls: Callable[[], object] = lambda: None):
        self.url = control_url.rstrip("/")
        parts = urlsplit(self.url)
        self.authority = parts.netloc
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.address = f"{parts.hostname}:{port}" if ":" not in (parts.hostname or "") else f"[{parts.hostname}]:{port}"
        self.prefix = parts.path
        self.tls = tls  # () -> the TLS context in force (identity.py), None for plain http://
        self.pool = UpstreamPool(connect_timeout=CONNECT_TIMEOUT)

    async def call(self, method: str, path: str, body=None, *, params: dict | None = None,
                   headers: dict | None = None, timeout: float = 5.0) -> Answer:
        """`method path` with `body` (a dict or list is sent as JSON, bytes as they are); the whole answer."""
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        fields = CIMultiDict(headers or {})
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        if body is not None:
            fields.setdefault("content-type", "application/json")
        request = Request(method, target, self.authority, fields, data, journey=Journey("control"))
        try:
            async with asyncio.timeout(timeout):
                response = await self.pool.send(self.address, request, tls=self.tls())
                try:
                    if isinstance(response.body, bytes):
                        content = response.body
                    else:
                        content = b"".join([piece async for piece in response.body])
                finally:
                    await response.discard()
        except TimeoutError as e:
            raise ControlCallFailed(f"{method} {path}: no answer within {timeout:g}s") from e
        except (MeshError, OSError) as e:
            raise ControlCallFailed(f"{method} {path}: {e}") from e
        return Answer(response.status, content)

    async def close(self) -> None:
        await self.pool.close()
