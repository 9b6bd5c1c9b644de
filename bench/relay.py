"""A bare L7 relay: what a Python HTTP proxy costs on this machine with no mesh in it.

The ceiling for issue 16's goals, measured in the same run as the sidecar
pair and the HAProxy pair: the bench runs two of these in a row
(`relay` configuration), wired like the sidecars. Each is the fastest
honest Python L7 proxy we know how to write — one asyncio Protocol per
connection on uvloop, httptools (llhttp) parsing requests and responses,
one kept-alive upstream connection per downstream connection — and it does
what every L7 proxy must: parse each head, copy every end-to-end header
across (hop-by-hop ones dropped), frame bodies (content-length or chunked)
as they arrive. No routing, no policy, no telemetry, no limits, no errors
answered: not a product, a yardstick. `--tls` makes the relay pair speak
mutual TLS 1.3 to each other, as the sidecars do under STRICT.

    python -m bench.relay --port 0 --upstream 8080 [--tls server|client --tls-dir D]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path

import httptools

from bench.upstream import run, serve

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                        b"transfer-encoding", b"upgrade"})


class Head:
    """The parser callbacks both directions share: a head's headers, then its body framed on."""

    def on_message_begin(self) -> None:
        self.headers: list[bytes] = []
        self.chunked = False

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower in HOP_BY_HOP:
            self.chunked |= lower == b"transfer-encoding" and b"chunked" in value.lower()
            return
        self.headers += (name, b": ", value, b"\r\n")

    def framed_head(self, first_line: bytes) -> bytes:
        framing = b"Transfer-Encoding: chunked\r\n" if self.chunked else b""
        return b"".join((first_line, *self.headers, framing, b"\r\n"))

    def framed_body(self, body: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(body), body) if self.chunked else body


class Downstream(Head, asyncio.Protocol):
    """A client's connection: each request is forwarded to this connection's own upstream one."""

    def __init__(self, upstream: tuple[str, int], client_tls: ssl.SSLContext | None):
        self.address, self.client_tls = upstream, client_tls
        self.upstream: Upstream | None = None
        self.pending: list[bytes] = []  # written before the upstream connection is up

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        line = b"%s %s HTTP/1.1\r\n" % (self.parser.get_method(), self.url)
        self.url = b""
        self.send(self.framed_head(line))

    def on_body(self, body: bytes) -> None:
        self.send(self.framed_body(body))

    def on_message_complete(self) -> None:
        if self.chunked:
            self.send(b"0\r\n\r\n")

    def send(self, data: bytes) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)
            return
        self.pending.append(data)
        if self.upstream is None:
            self.upstream = Upstream(self)
            loop = asyncio.get_running_loop()
            loop.create_task(loop.create_connection(lambda: self.upstream, *self.address, ssl=self.client_tls,
                                                    server_hostname="" if self.client_tls else None))

    def connection_lost(self, exc) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


class Upstream(Head, asyncio.Protocol):
    """The connection to the next hop: answers are written back to the downstream connection."""

    transport = None

    def __init__(self, downstream: Downstream):
        self.downstream = downstream
        self.parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"".join(self.downstream.pending))
        self.downstream.pending.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.downstream.transport.close()

    def on_status(self, status: bytes) -> None:
        self.reason = status

    def on_headers_complete(self) -> None:
        line = b"HTTP/1.1 %d %s\r\n" % (self.parser.get_status_code(), self.reason)
        self.downstream.transport.write(self.framed_head(line))

    def on_body(self, body: bytes) -> None:
        self.downstream.transport.write(self.framed_body(body))

    def on_message_complete(self) -> None:
        if self.chunked:
            self.downstream.transport.write(b"0\r\n\r\n")

    def connection_lost(self, exc) -> None:
        self.downstream.transport.close()


def tls_context(side: str, directory: Path) -> ssl.SSLContext:
    """Mutual TLS 1.3 from the files `write_credentials` made: `side` is server or client."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if side == "server" else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(directory / "ca.pem")
    ctx.load_cert_chain(directory / f"{side}.pem", directory / f"{side}.key")
    return ctx


def write_credentials(directory: Path) -> None:
    """A CA and a server and a client certificate from it, for a `--tls` relay pair."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from minimesh.pki.ca import CertificateAuthority

    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create()
    (directory / "ca.pem").write_text(ca.bundle_pem)
    for side in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        issued = ca.issue(key.public_key(), f"spiffe://cluster.local/ns/default/sa/relay-{side}")
        (directory / f"{side}.pem").write_text(issued.pem)
        (directory / f"{side}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--tls", choices=["server", "client"], help="listen with TLS, or connect with TLS")
    parser.add_argument("--tls-dir", type=Path, help="where write_credentials put the CA and certificates")
    args = parser.parse_args(argv)
    server_tls = tls_context("server", args.tls_dir) if args.tls == "server" else None
    client_tls = tls_context("client", args.tls_dir) if args.tls == "client" else None
    run(serve(lambda: Downstream(("127.0.0.1", args.upstream), client_tls), args.port, server_tls))


if __name__ == "__main__":
    main()
