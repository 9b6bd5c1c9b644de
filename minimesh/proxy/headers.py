"""Header hygiene at each hop: hop-by-hop headers out, forwarding headers in.

RFC 9110 §7.6.1: "Intermediaries MUST parse a received Connection header
field before a message is forwarded and, for each connection-option in this
field, remove any header or trailer field(s) from the message with the same
name as the connection-option, and then remove the Connection header field
itself". The fixed list below is the set every proxy also drops (RFC 9110
§7.6.1 and the older RFC 2616 §13.5.1 list that proxies still honour).
"""

from __future__ import annotations

import random

from multidict import CIMultiDict

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
})


def strip_hop_by_hop(headers: CIMultiDict) -> CIMultiDict:
    """`headers` without hop-by-hop fields (and those `Connection` names).

    A copy when something is dropped; the very same object when nothing is
    (most requests between sidecars), which saves a copy per message.
    """
    if HOP_BY_HOP.isdisjoint(map(str.lower, headers.keys())):
        return headers
    named = set()
    for value in headers.getall("connection", ()):
        named.update(token.strip().lower() for token in value.split(",") if token.strip())
    drop = HOP_BY_HOP | named
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def add_forwarding(headers: CIMultiDict, client_ip: str) -> None:
    """Append the client to x-forwarded-for and make sure the request has an id.

    x-request-id is generated at the first mesh hop when missing, as Envoy
    does, so every log line of one request carries the same id.
    """
    if client_ip:
        previous = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{previous}, {client_ip}" if previous else client_ip
    if not headers.get("x-request-id"):
        headers["x-request-id"] = request_id()


_IDS = random.Random()  # its own generator: a seeded run (dice.py) draws the same splits with or without ids


def request_id() -> str:
    """A random UUID (version 4) as Envoy makes for x-request-id: an id, not a secret.

    Made from one draw of 128 random bits rather than `uuid.uuid4()`, which
    reads the kernel's random source and builds a UUID object: a quarter of
    the cost, on every request that enters the mesh.
    """
    bits = _IDS.getrandbits(128)
    h = "%032x" % bits
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[bits >> 62 & 3]}{h[17:20]}-{h[20:]}"
