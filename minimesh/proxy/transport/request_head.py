"""From a parsed request head to a minimesh `Request`: target, authority, framing, what to strip.

The server connection (http_server.py) hands over what llhttp found — the
method, the request target, the header fields — and gets back an `Exchange`:
the `Request` the layers will see, and how its body arrives. Three request
targets are accepted (RFC 9112 §3.2): origin-form (`/items?x=1`, the
authority from `Host`), absolute-form (`http://catalog/items`, what an app
sends its HTTP_PROXY) and nothing else — `*` (asterisk-form, `OPTIONS *`)
asks about the proxy itself and is 400, CONNECT (authority-form) is 405.
"""

from __future__ import annotations

from multidict import CIMultiDict

from minimesh.proxy.transport.body import BodyStream
from minimesh.proxy.headers import strip_hop_by_hop
from minimesh.proxy.message import Journey, Request

BUFFER_LIMIT = 1024 * 1024  # request bodies up to this are held whole, so they can be retried


class Refuse(Exception):
    """Raised inside a parser callback: answer `status` with `text` and close."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status, self.text = status, text


class Exchange:
    """One request on a connection, from its head to the end of its answer."""

    __slots__ = ("request", "parts", "stream", "complete", "keep_alive", "http10", "expect", "continued",
                 "leftover", "reported")

    def __init__(self, request: Request, keep_alive: bool, http10: bool, expect: bool):
        self.request = request
        self.parts: list[bytes] | None = None  # a body being collected whole
        self.stream: BodyStream | None = None  # a body streaming through
        self.complete = False  # the whole request has been read
        self.keep_alive, self.http10, self.expect = keep_alive, http10, expect
        self.continued = False  # a 100 Continue has been sent
        self.leftover = b""  # bytes after an Upgrade request: the tunnel's first
        self.reported = False  # handler.done() has been called


def split_target(target: str, headers) -> tuple[str, str]:
    """(authority, path) of a request target, or Refuse."""
    if target.startswith("/"):
        return headers.get("host", ""), target
    if target.startswith(("http://", "https://")):  # absolute-form: we are the app's forward proxy
        rest = target.split("://", 1)[1]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        path = rest[cut:] or "/"
        return rest[:cut], "/" + path if path.startswith("?") else path
    if target == "*":
        raise Refuse(400, "a request for * (OPTIONS *) asks about the proxy itself, which answers no such request")
    raise Refuse(400, f"request target {target[:80]!r} is neither a path nor an absolute URL")


def exchange_for(method: str, target: str, fields, journey: Journey, client: str, peer_identity: str | None,
                 mtls: bool, keep_alive: bool, http10: bool, upgrade_asked: bool, flow) -> Exchange:
    """The Exchange for a parsed head; its body streams from `flow`'s socket when large or chunked."""
    if method == "CONNECT":
        raise Refuse(405, "CONNECT is not supported: the sidecar proxies HTTP requests, it opens no tunnels")
    headers = CIMultiDict([(n.decode("latin-1"), v.decode("latin-1")) for n, v in fields])
    authority, path = split_target(target, headers)
    upgrade = headers.get("upgrade") if upgrade_asked else None
    expect = headers.get("expect", "").lower() == "100-continue"
    chunked = "transfer-encoding" in headers
    length = headers.get("content-length")
    forwarded = strip_hop_by_hop(headers)
    if expect:
        forwarded.popall("expect", None)  # answered here (http_server.py), not sent on
    if mtls:
        journey.mtls = True  # connection_security_policy="mutual_tls"
        journey.peer_identity = peer_identity
    request = Request(method=method, path=path, authority=authority, headers=forwarded, client=client,
                      journey=journey, upgrade=upgrade)
    exchange = Exchange(request, keep_alive, http10, expect)
    if upgrade is None and (chunked or (length is not None and int(length) > BUFFER_LIMIT)):
        exchange.stream = request.body = BodyStream(flow)
    elif upgrade is None and length is not None and int(length) > 0:
        exchange.parts = []
    return exchange
