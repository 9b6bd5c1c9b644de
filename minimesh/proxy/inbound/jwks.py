"""Key sets from a RequestAuthentication's `jwksUri`: fetched over HTTP(S), cached, refreshed.

On Istio, istiod fetches each jwksUri and puts the keys into the proxies'
configuration, fetching again every 20 minutes (PILOT_JWT_PUB_KEY_REFRESH_INTERVAL).
Here each proxy fetches for itself, with the same rhythm:

- when a snapshot names a jwksUri, the proxy fetches it at once
  (`prefetch`), so the first token does not wait;
- a request that needs keys not fetched yet waits for the fetch, up to the
  rule's `timeout` (default 5 s); if there are still no keys, its token
  cannot be verified: 401 "Jwks remote fetch is failed" (a request without a
  token is unaffected);
- keys older than the refresh interval are fetched again in the background
  while the old ones keep serving; a failed refresh keeps the last good set
  and is retried after RETRY_S;
- a jwksUri whose host is a mesh service (`http://issuer.default.svc.cluster.local/…`,
  which istiod would resolve through the cluster's DNS) is fetched from one
  of that service's endpoints, the way istiod reaches it: plaintext, from
  outside the mesh, with no identity — so the service's PeerAuthentication
  and AuthorizationPolicy must let such a caller in, as on Istio.

Time is injected (`clock`), and so is the fetch, for tests that count them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable

from minimesh.config.requestauthentication import parse_jwks

if TYPE_CHECKING:
    import jwt

log = logging.getLogger("minimesh.proxy")

REFRESH_S = 20 * 60.0  # Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL default
RETRY_S = 5.0
MAX_JWKS_BYTES = 1024 * 1024


async def http_fetch(uri: str, timeout: float, address: str | None = None) -> str:
    """GET the key set; `address` ("host:port"), when given, is where the URI's host is reached."""
    import aiohttp  # here, not at the top: ~14 MB that only a proxy fetching key sets needs (issue 16)

    headers = {}
    if address is not None:
        parts = urllib.parse.urlsplit(uri)
        headers["Host"] = parts.netloc
        uri = urllib.parse.urlunsplit(("http", address, parts.path or "/", parts.query, ""))
    try:
        async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.get(uri, headers=headers) as response:
                if response.status != 200:
                    raise ValueError(f"answered {response.status}")
                body = await response.content.read(MAX_JWKS_BYTES + 1)
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("key set larger than 1 MiB")
                return body.decode()
    except aiohttp.ClientError as e:
        raise OSError(f"{type(e).__name__}: {e}") from e


Resolve = Callable[[str], "str | None"]  # a URI's host -> a mesh endpoint's address, or None


class JwksCache:
    def __init__(self, fetch: Callable[..., Awaitable[str]] = http_fetch,
                 clock: Callable[[], float] = time.monotonic, refresh_s: float = REFRESH_S):
        self.fetch = fetch
        self.clock = clock
        self.refresh_s = refresh_s
        self.keysets: dict[str, tuple[jwt.PyJWKSet, float]] = {}  # uri -> (keys, when fetched)
        self.failed_at: dict[str, float] = {}
        self._fetching: dict[str, asyncio.Task] = {}

    def prefetch(self, uris: Iterable[str], timeout: float = 5.0, resolve: Resolve | None = None) -> None:
        for uri in uris:
            self._start(uri, timeout, resolve)

    async def keys(self, uri: str, timeout: float, resolve: Resolve | None = None) -> jwt.PyJWKSet | None:
        """The key set for `uri`: the cached one (refreshing it if stale), or wait up to `timeout` for one."""
        cached = self.keysets.get(uri)
        now = self.clock()
        if cached is not None:
            if now - cached[1] >= self.refresh_s and now - self.failed_at.get(uri, -RETRY_S) >= RETRY_S:
                self._start(uri, timeout, resolve)  # in the background: the old keys keep serving
            return cached[0]
        if now - self.failed_at.get(uri, -RETRY_S) < RETRY_S:
            return None  # it just failed: do not let every request hammer the key server
        task = self._start(uri, timeout, resolve)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            return None
        found = self.keysets.get(uri)
        return found[0] if found else None

    def _start(self, uri: str, timeout: float, resolve: Resolve | None) -> asyncio.Task:
        task = self._fetching.get(uri)
        if task is None or task.done():
            address = resolve(urllib.parse.urlsplit(uri).hostname or "") if resolve else None
            task = self._fetching[uri] = asyncio.get_running_loop().create_task(self._fetch(uri, timeout, address))
        return task

    async def _fetch(self, uri: str, timeout: float, address: str | None) -> None:
        try:
            keys = parse_jwks(await self.fetch(uri, timeout, address))
        except (OSError, ValueError, asyncio.TimeoutError) as e:
            self.failed_at[uri] = self.clock()
            log.warning("jwksUri %s: cannot fetch the key set (%s); tokens it signs get 401 until it can",
                        uri, e)
            return
        self.keysets[uri] = (keys, self.clock())
        self.failed_at.pop(uri, None)
        log.info("jwksUri %s: %d key(s) fetched", uri, len(keys.keys))
