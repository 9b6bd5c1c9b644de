"""From a layer's `Response` to the head the client reads: framing and keep-alive.

The server connection (http_server.py) asks `frame(exchange, response)` for
the bytes of the head and how the body follows it; it does the writing.
This is the decision, kept apart from the I/O (RFC 9112 §6 and §9):

- a body in hand is sent with its own `Content-Length` (whatever the
  upstream said: a layer may have changed the body);
- a streamed body keeps the upstream's `Content-Length` when it had one,
  else goes chunked — or, to an HTTP/1.0 client, which knows no chunks,
  runs to the end of the connection;
- HEAD answers, 1xx, 204 and 304 carry no body whatever their headers say;
- a 101 to an Upgrade request names the protocol and keeps the connection
  (it becomes a tunnel, tunnel.py);
- hop-by-hop fields never pass (headers.py); `Connection: close` or
  `keep-alive` is ours to say.
"""

from __future__ import annotations

from minimesh.proxy.headers import strip_hop_by_hop
from minimesh.proxy.transport import wire

NO_BODY_STATUSES = frozenset({204, 304})


def frame(exchange, response) -> tuple[bytes, bool, bool, bool]:
    """(head, keep the connection?, chunked?, bodiless?) for answering `exchange` with `response`."""
    request = exchange.request
    status = response.status
    body = response.body
    headers = strip_hop_by_hop(response.headers)
    keep = exchange.keep_alive and (exchange.complete or exchange.stream is None)
    bodiless = request.method == "HEAD" or status in NO_BODY_STATUSES or status < 200
    extra = ""
    chunked = False
    if status == 101 and response.tunnel is not None:
        extra = f"Connection: Upgrade\r\nUpgrade: {request.upgrade}\r\n"
        keep = True
    elif isinstance(body, bytes):
        if not bodiless:
            headers.popall("content-length", None)
            extra = f"Content-Length: {len(body)}\r\n"
    elif not bodiless and "content-length" not in headers:
        if exchange.http10:
            keep = False  # an HTTP/1.0 client reads to the end of the connection
        else:
            chunked = True
            extra = "Transfer-Encoding: chunked\r\n"
    if not keep and status != 101:
        extra += "Connection: close\r\n"
    elif keep and exchange.http10:
        extra += "Connection: keep-alive\r\n"
    return wire.response_head(status, headers, extra), keep, chunked, bodiless
