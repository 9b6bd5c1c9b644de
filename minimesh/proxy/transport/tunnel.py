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


class TunnelEnd:
    """What both protocols (http_server.py, http_client.py) do as one end of a tunnel.

    Until a tunnel exists these are plain flow control: `pause_writing` and
    `resume_writing` are asyncio's calls when this socket's write buffer
    passes its marks.
    """

    tunnel = None  # the other end, once spliced

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.flow.pause("tunnel")  # the other side stops reading until we have written
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.flow.resume("tunnel")
        self.flow.resume_writing()

    def tunnel_eof(self):
        """The peer finished sending: pass the half-close on, and keep the connection open for the answer."""
        if self.tunnel is not None and self.tunnel.transport.can_write_eof():
            self.tunnel.transport.write_eof()
            return True
        return None
