"""Consistent hashing (Istio's `loadBalancer.consistentHash`, Envoy's ring hash) and slow start.

Theory of operation. Some services work better when the same user keeps
landing on the same instance — a warm cache, an in-memory session. The
request carries a key (a header, a cookie, a query parameter, or the
caller's IP); the key is hashed onto a ring of 2^64 points on which every
endpoint has many "virtual nodes" (together at least `minimumRingSize`,
Envoy's default 1024); the request goes to the first virtual node clockwise
from the key's point. The same key always finds the same node while the set
of endpoints is unchanged, and when an endpoint leaves, only the keys that
were on its nodes move — about 1/N of them, not all (as `hash % N` would).

A request without the key is sent to a random endpoint, as Envoy does —
unless the key is a cookie with a `ttl`: then the sidecar makes one up, uses
it, and sets it on the response (`Set-Cookie`), so the browser's next
requests stick.

Slow start (`warmupDurationSecs`, `warmup`): an endpoint that joins an
existing destination gets a share of traffic that grows over the window,
from `minimumPercent` (10 %) to full: weight factor = max(min %, (t /
window)^(1/aggression)), Envoy's formula. Endpoints present when this
sidecar first saw the destination are warm already.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from bisect import bisect_left
from functools import lru_cache
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@lru_cache(maxsize=64)
def build_ring(addresses: tuple[str, ...], minimum_ring_size: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(sorted points, the address owning each point): ceil(min/N) virtual nodes per endpoint."""
    per_endpoint = max(1, math.ceil(minimum_ring_size / max(1, len(addresses))))
    nodes = sorted((hash64(f"{address}_{i}"), address) for address in addresses for i in range(per_endpoint))
    return tuple(p for p, _ in nodes), tuple(a for _, a in nodes)


def ring_pick(addresses: tuple[str, ...], minimum_ring_size: int, key_hash: int) -> str:
    points, owners = build_ring(addresses, minimum_ring_size)
    i = bisect_left(points, key_hash)
    return owners[i % len(owners)]


def hash_key(policy, method_path: str, headers, client: str) -> tuple[str | None, str | None]:
    """The request's hash key under `policy` (a config.ConsistentHash), and a cookie to set, if one was made."""
    if policy.http_header_name is not None:
        return headers.get(policy.http_header_name), None
    if policy.http_query_parameter_name is not None:
        values = parse_qs(urlsplit(method_path).query).get(policy.http_query_parameter_name)
        return (values[0] if values else None), None
    if policy.use_source_ip:
        return client.rsplit(":", 1)[0] if client else None, None
    jar = SimpleCookie()
    for header in headers.getall("cookie", []):
        try:
            jar.load(header)
        except CookieError:  # a malformed Cookie header is the client's problem, not a mesh error
            continue
    if policy.http_cookie in jar:
        return jar[policy.http_cookie].value, None
    if policy.cookie_ttl is None:
        return None, None  # no cookie and no ttl: Envoy makes none, the pick is random
    value = secrets.token_hex(8)
    attributes = [f"{policy.http_cookie}={value}"]
    if policy.cookie_path:
        attributes.append(f"Path={policy.cookie_path}")
    if policy.cookie_ttl:
        attributes.append(f"Max-Age={int(policy.cookie_ttl)}")
    attributes.append("HttpOnly")
    return value, "; ".join(attributes)


def warmup_factor(age: float, window: float, min_percent: float, aggression: float) -> float:
    """Share of a full weight for an endpoint `age` seconds into its slow-start `window`."""
    if age >= window:
        return 1.0
    return max(min_percent / 100, (max(age, 0.0) / window) ** (1 / aggression))
