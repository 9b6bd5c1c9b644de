"""After `101 Switching Protocols`: two connections spliced into one byte pipe.

A WebSocket (or any other HTTP/1.1 Upgrade, RFC 9110 §7.8) starts as an
ordinary request. The sidecar sends it upstream with its `Upgrade` header;
if the upstream answers 101, HTTP is over on both connections and the
sidecar only copies bytes: what the client sends goes to the upstream, what
the upstream sends goes to the client. Istio lets WebSocket through by
default, and so does minimesh.

Each side's protocol forwards what it reads to `tunnel.transport`; when one
side's write buffer fills, the other side stops reading (flow.py), and when
either side closes, so does the other.
"""

from __future__ import annotations


def splice(downstream, upstream, leftover: bytes) -> None:
    """Join the client's connection and the upstream's; `leftover`: client bytes already read."""
    if downstream.closed or upstream.closed:
        downstream.close()
        upstream.close()
        return
    downstream.tunnel, upstream.tunnel = upstream, downstream
    if upstream.leftover:
        downstream.transport.write(upstream.leftover)
        upstream.leftover = b""
    if leftover:
        upstream.transport.write(leftover)
    downstream.flow.resume("upgrade")
    downstream.flow.resume("pipeline")
    upstream.flow.resume("upgrade")
