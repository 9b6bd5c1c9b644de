"""The loop guard: a request that would come back into this sidecar is answered 508 at once.

An app that points its HTTP client at its own sidecar's address (or a route
whose destination is the sidecar itself) would otherwise send the request
round and round — each turn a new connection, until the process runs out of
file descriptors. Two checks stop it on its first turn:

- **by address**: the outbound and gateway listeners remember where they
  listen, and an upstream address that is one of them is refused before a
  connection is made;
- **by marker**: every request the outbound or gateway sends on carries
  `x-minimesh-hop` with this process's random token, and a request that
  arrives at those listeners already carrying it has been here before
  (a loop through a name or address we did not recognise). The inbound
  listener removes the marker before the app sees it, so an app that copies
  all headers onto its own calls does not look like a loop.

The answer is 508 Loop Detected (RFC 5842 §7.2) with `x-minimesh-error`.
"""

from __future__ import annotations

import secrets

from minimesh.errors import LoopDetected
from minimesh.proxy.message import Request

HOP_HEADER = "x-minimesh-hop"
FORWARDING = frozenset({"outbound", "gateway", "mirror"})  # the journeys that send to arbitrary addresses
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]", "0.0.0.0")


class LoopGuard:
    def __init__(self, token: str | None = None):
        self.token = token or secrets.token_hex(8)
        self.addresses: dict[str, str] = {}  # "host:port" -> the listener there
        self._line = f"{HOP_HEADER}: {self.token}\r\n"

    def listening(self, name: str, host: str, port: int, advertised: str | None = None) -> None:
        """Remember a forwarding listener's addresses (every name this host may be reached by)."""
        names = {host, advertised or host}
        if host in LOCAL_NAMES or host in ("", "::"):
            names.update(LOCAL_NAMES)
        for h in names:
            self.addresses[f"{h}:{port}"] = name

    def arriving(self, request: Request) -> None:
        """At a listener: refuse a request that carries our own marker; the inbound drops the marker."""
        headers = request.headers
        if HOP_HEADER not in headers:
            return
        if request.journey.direction not in FORWARDING:
            headers.popall(HOP_HEADER, None)
            return
        if any(self.token in value for value in headers.getall(HOP_HEADER)):
            raise LoopDetected(f"{request.authority}{request.path} has already passed through this sidecar's "
                               f"{request.journey.direction} listener: it would go round again")

    def leaving(self, address: str, request: Request) -> str:
        """Before connecting: refuse our own listeners; mark forwarded requests (the header line to add)."""
        name = self.addresses.get(address)
        if name is not None:
            raise LoopDetected(f"{address} is this sidecar's own {name} listener: the request would loop")
        return self._line if request.journey.direction in FORWARDING else ""
