"""`minimesh sniff SERVICE`: see the bytes on the wire between two sidecars.

In local mode every hop is a TCP connection on 127.0.0.1, so the honest way
to show what travels between sidecars is to stand in the middle of one. The
sniffer opens a relay that forwards, byte for byte, to one instance's
inbound listener, and registers that relay with the control plane as one
more endpoint of SERVICE (same labels, same claimed identity) — as the
admin, the only caller the control plane lets register for another service. Callers now
send some of their requests through it — about one in N+1 with N instances —
and it prints every chunk that passes:

    plaintext HTTP   you read the request, its headers, the answer
    TLS              a handshake (0x16), then application data (0x17): noise

Under mTLS the relay sees only ciphertext, and it cannot do more than relay:
the TLS session runs end to end between the two sidecars, and the caller
checks that the far end proves catalog's SPIFFE ID. That the registry takes
its word for being an endpoint at all is the lesson's point — the registry
is not what keeps traffic safe; the certificates are.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import sys
import urllib.request
from dataclasses import dataclass, field

from minimesh.errors import UserError
from minimesh.runner.control_client import opener_for

RECORD_TYPES = {0x14: "TLS change cipher spec", 0x15: "TLS alert", 0x16: "TLS handshake",
                0x17: "TLS application data (encrypted)"}


def describe_chunk(data: bytes, width: int = 120) -> tuple[str, str]:
    """(kind, what a human can read of it): pure, so the lesson and tests agree on the words."""
    if data and data[0] in RECORD_TYPES and len(data) >= 3 and data[1] == 0x03:
        return "tls", f"{RECORD_TYPES[data[0]]}: " + " ".join(f"{b:02x}" for b in data[:24]) + " …"
    text = data[:width].decode("latin-1").replace("\r\n", " ⏎ ")
    printable = "".join(c if c.isprintable() else "." for c in text)
    return "plaintext", printable + (" …" if len(data) > width else "")


def address_towards(host: str) -> str:
    """This machine's address as `host` sees it: 127.0.0.1 beside a local stack,
    the Docker bridge's gateway beside a compose stack — where the other
    sidecars can reach the relay. (A UDP "connect" sends nothing; it only
    asks the kernel which source address its route to `host` uses.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))
        return probe.getsockname()[0]


@dataclass
class Sniffer:
    control_url: str
    service: str
    out: object = sys.stdout
    seen: list[tuple[str, int, str]] = field(default_factory=list)  # (direction, bytes, kind)
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def _cp(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(self.control_url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"content-type": "application/json"})
        with opener_for(self.control_url).open(req, timeout=5) as r:  # as the admin (MINIMESH_HOME)
            return json.load(r)

    def _target(self) -> dict:
        instances = self._cp("GET", "/v1/instances")["instances"]
        mine = [i for i in instances if i["service"] == self.service and i["kind"] == "sidecar"
                and not i["instance"].endswith(".sniff") and i["addresses"].get("inbound")]
        if not mine:
            raise UserError(f"no running instance of {self.service!r} to sniff; "
                            f"`minimesh status` lists the services")
        return mine[0]

    async def _pipe(self, reader, writer, label: str) -> None:
        try:
            while data := await reader.read(65536):
                kind, text = describe_chunk(data)
                self.seen.append((label, len(data), kind))
                print(f"{label:<28} {len(data):>6} bytes  {text}", file=self.out, flush=True)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _relay(self, client_r, client_w) -> None:
        n = next(self._numbers)
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream.rsplit(":", 1))
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(self._pipe(client_r, up_w, f"[{n}] caller → {self.service}"),
                                 self._pipe(up_r, client_w, f"[{n}] {self.service} → caller"))
        except asyncio.CancelledError:  # the sniffer is stopping: hang up both sides
            client_w.close()
            up_w.close()

    @contextlib.asynccontextmanager
    async def running(self):
        """Relay and registration for the duration of the block; always deregistered after."""
        target = self._target()
        self.upstream = target["addresses"]["inbound"]
        here = address_towards(self.upstream.rsplit(":", 1)[0])
        server = await asyncio.start_server(self._relay, here, 0)
        port = server.sockets[0].getsockname()[1]
        name = f"{target['instance']}.sniff"
        registration = {"service": self.service, "version": target["version"], "instance": name,
                        "kind": "sidecar", "labels": target["labels"], "identity": target.get("identity"),
                        "addresses": {"inbound": f"{here}:{port}", "admin": target["addresses"]["admin"]}}

        async def heartbeat():
            while True:
                await asyncio.to_thread(self._cp, "POST", "/v1/register", registration)
                await asyncio.sleep(1.0)

        beating = asyncio.create_task(heartbeat())
        print(f"sniffing {self.service}: relay {here}:{port} → {target['instance']} ({self.upstream}), "
              f"registered as endpoint {name}", file=self.out, flush=True)
        try:
            yield self
        finally:
            beating.cancel()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._cp, "DELETE", f"/v1/instances/{name}")
            server.close()


async def sniff(control_url: str, service: str, seconds: float | None, count: int | None) -> None:
    sniffer = Sniffer(control_url, service)
    async with sniffer.running():
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds if seconds else None
        while (deadline is None or loop.time() < deadline) and (count is None or len(sniffer.seen) < count):
            await asyncio.sleep(0.1)


def run(control_url: str, service: str, seconds: float | None, count: int | None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(sniff(control_url, service, seconds, count))
