"""What every attack test shares: the shop under attack, the attacker's listener, the attacker's TLS.

    async with attack_on(shop) as during:      # 200 shop requests through the gateway, 4 at a time,
        ...the attack...                        # while the block runs
    assert during.statuses == [200] * 200       # the shop never noticed

    trap = await Trap.open()                    # where the attacker wants traffic to go
    assert trap.connections == 0                # and none came

An attack is made the way an attacker on the same machine would make it:
plain HTTP or TLS to the real HTTPS address of the control plane
(`cp.https_url`), with no certificate, another CA's, or a real workload's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from minimesh.pki.ca import CertificateAuthority
from tests.support.mtls import write_leaf

SHOP_REQUESTS = 200


@dataclass
class During:
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def all_ok(self) -> bool:
        return self.statuses == [200] * SHOP_REQUESTS and not self.errors


async def _shop(url: str, during: During, n: int, path: str, host: str | None, concurrency: int = 4) -> None:
    queue = list(range(n))
    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=20)) as http:
        async def worker():
            while queue:
                queue.pop()
                try:
                    async with http.get(url + path, headers={"Host": host} if host else None) as r:
                        await r.read()
                        during.statuses.append(r.status)
                except (aiohttp.ClientError, TimeoutError) as e:
                    during.errors.append(repr(e))
        await asyncio.gather(*(worker() for _ in range(concurrency)))


@contextlib.asynccontextmanager
async def attack_on(gateway_url: str, n: int = SHOP_REQUESTS, path: str = "/api/products", host: str | None = None):
    """Shop traffic through the gateway for as long as the block (the attack) runs, and then to n."""
    during = During()
    shopping = asyncio.create_task(_shop(gateway_url, during, n, path, host))
    try:
        yield during
    finally:
        await shopping


class Trap:
    """A TCP listener where an attacker wants the mesh to send traffic; counts what arrives."""

    def __init__(self):
        self.connections = 0
        self.received = b""
        self.server: asyncio.base_events.Server | None = None

    @classmethod
    async def open(cls) -> "Trap":
        trap = cls()

        async def handle(reader, writer):
            trap.connections += 1
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                trap.received += await asyncio.wait_for(reader.read(4096), 2)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
            writer.close()

        trap.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return trap

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        self.server.close()


def client_tls(ca_pem: str, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """An attacker's TLS client for the control plane: trusts the mesh CA, presents `cert` if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=ca_pem)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def workload_tls(home: Path, directory: Path, service: str) -> ssl.SSLContext:
    """TLS as a real workload of `service` (a certificate from the mesh CA) — a compromised sidecar."""
    ca = CertificateAuthority.load_or_create(home / "control")
    cert, key = write_leaf(directory, ca, service, name=service)
    return client_tls(ca.bundle_pem, cert, key)


def foreign_tls(ca_pem: str, directory: Path, service: str) -> ssl.SSLContext:
    """TLS with a certificate for `service` from another CA."""
    cert, key = write_leaf(directory, CertificateAuthority.create(), service, name=f"foreign-{service}")
    return client_tls(ca_pem, cert, key)


async def call(url: str, method: str, path: str, tls: ssl.SSLContext | bool, *, body=None, data=None,
               headers=None) -> tuple[int, dict | str]:
    """One request; (status, JSON or text). A TLS refusal is (0, the error)."""
    try:
        async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=30)) as http:
            async with http.request(method, url + path, ssl=tls, json=body, data=data, headers=headers) as r:
                text = await r.text()
                try:
                    return r.status, json.loads(text)
                except ValueError:
                    return r.status, text
    except (aiohttp.ClientConnectorError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as e:
        return 0, repr(e)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
