"""The upstream app the bench talks to: as fast as a Python HTTP server gets.

A benchmark of a proxy should measure the proxy. An aiohttp app spends ~100 µs
of its own per request, which would hide part of what the sidecars add, so the
upstream here is a bare asyncio protocol on uvloop: it finds the end of each
request's head, skips a Content-Length body if there is one, and writes the
same small JSON answer every time (keep-alive, pipelining tolerated).

    python -m bench.upstream --port 0     # prints "listening on <port>" once ready
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys

BODY = b'{"service":"bench","version":"v1","instance":"bench-0"}'
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
          + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


class Upstream(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        self.skip = 0  # body bytes of the current request still to arrive

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while True:
            if self.skip:
                taken = min(self.skip, len(buffer))
                self.skip -= taken
                buffer = buffer[taken:]
                if self.skip:
                    break
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buffer = buffer[:end], buffer[end + 4:]
            length = CONTENT_LENGTH.search(head)
            self.skip = int(length.group(1)) if length else 0
            self.transport.write(ANSWER)
            if CLOSE.search(head):
                self.transport.close()
                return
        self.buffer = buffer


async def serve(factory, port: int, ssl=None) -> None:
    """Listen on loopback `port` (0: any free one) with `factory`'s protocol; say where; serve until SIGTERM."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", port, backlog=1024, ssl=ssl)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def run(main) -> None:
    """Run the coroutine `main` on uvloop (plain asyncio where uvloop is missing), then exit 0."""
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(main)
    sys.exit(0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    run(serve(Upstream, args.port))


if __name__ == "__main__":
    main()
