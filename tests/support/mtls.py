"""Builders for mTLS tests: sidecars that hold a join token, and a mesh of them.

    async with run_secure_mesh(tmp_path) as mesh:      # like run_mesh, but every sidecar has a token
        web = await mesh.add("web")
        mesh.token("web")                              # the join token for a service
        mesh.ca()                                      # the mesh CA, loaded from the home (to sign rogue certs)

Everything else (converged, apply, client, logs) is tests/support/mesh.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from pathlib import Path

from minimesh.pki.spiffe import GATEWAY_ACCOUNT, account_key
from minimesh.pki.ca import CertificateAuthority
from minimesh.pki.tokens import issue_token
from minimesh.pki.workload import build_csr, credentials, new_key
from minimesh.pki.spiffe import spiffe_id
from tests.support.control import ControlPlaneProcess
from tests.support.manifests import ingress
from tests.support.mesh import Instance, Mesh, SidecarProcess, _log_file, serving
from tests.support.shop import astart_service, free_port


class TokenSidecar(SidecarProcess):
    """A `minimesh sidecar` started with the `--token` given (None: no token at all)."""

    def __init__(self, *args, token: str | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.token = token


async def start_token_sidecar(control_url: str, service: str, token: str | None, app_port: int | None = None,
                              version: str = "v1", instance: str | None = None, gateway: bool = False,
                              default_service: str | None = None, log_dir: Path | None = None,
                              namespace: str = "default") -> TokenSidecar:
    instance = instance or f"{service}-{version}-{os.getpid()}-{time.monotonic_ns()}"
    sidecar = TokenSidecar(control_url, service, app_port, version, instance, gateway, default_service,
                           _log_file(instance, log_dir), token=token, namespace=namespace)
    try:
        return await sidecar.start()
    except BaseException:
        sidecar.kill()
        print(f"----- sidecar {instance} -----\n{sidecar.logs()}")
        raise


class SecureMesh(Mesh):
    def token(self, service: str) -> str:
        return issue_token(self.control.home, service)

    def ca(self) -> CertificateAuthority:
        return CertificateAuthority.load_or_create(self.control.home / "control")

    async def _add_one(self, service: str, version: str, env: dict, token: str | None = "auto",
                       namespace: str = "default") -> Instance:
        name = f"{service}-{version}-{next(self._numbers)}"
        app_port = free_port()
        token = self.token(account_key(namespace, service)) if token == "auto" else token
        sidecar = await start_token_sidecar(self.control_url, service, token, app_port, version, name,
                                            log_dir=self.log_dir, namespace=namespace)
        instance = Instance(service, version, name, None, sidecar)
        self.instances.append(instance)
        instance.app = await astart_service(service, {"SERVICE": service, "VERSION": version, "INSTANCE": name,
                                                      "HTTP_PROXY": sidecar.outbound, **env}, port=app_port)
        return instance

    async def add_as(self, service: str, token: str | None, version: str = "v1", env: dict | None = None,
                     app: str | None = None) -> Instance:
        """One instance of `service` with the given token (None: no identity) running demo app `app`."""
        name = f"{service}-{version}-{next(self._numbers)}"
        app_port = free_port()
        sidecar = await start_token_sidecar(self.control_url, service, token, app_port, version, name,
                                            log_dir=self.log_dir)
        instance = Instance(service, version, name, None, sidecar)
        self.instances.append(instance)
        instance.app = await astart_service(app or service, {"SERVICE": service, "VERSION": version,
                                                             "INSTANCE": name, "HTTP_PROXY": sidecar.outbound,
                                                             **(env or {})}, port=app_port)
        return instance

    async def add_gateway(self, default_service: str | None = "web") -> SidecarProcess:
        self.gateway = await start_token_sidecar(self.control_url, "gateway", self.token(GATEWAY_ACCOUNT), gateway=True,
                                                 instance="gateway", log_dir=self.log_dir)
        if default_service:
            await self.apply(*ingress(default_service))
        return self.gateway


@contextlib.asynccontextmanager
async def run_secure_mesh(home: Path, ttl: float = 10.0, cert_ttl: str | None = None):
    """A control plane in `home` (optionally with a short certificate TTL) and a SecureMesh on it."""
    home = Path(home)
    old = os.environ.get("MINIMESH_CERT_TTL")
    if cert_ttl:
        os.environ["MINIMESH_CERT_TTL"] = cert_ttl  # the control plane subprocess inherits it
    try:
        control = ControlPlaneProcess(home, ttl, 0.0)
        await control.start()
    finally:
        if cert_ttl:
            os.environ.pop("MINIMESH_CERT_TTL") if old is None else os.environ.__setitem__("MINIMESH_CERT_TTL", old)
    async with serving(SecureMesh(control, home / "logs"), control) as mesh:
        yield mesh


# --- credentials for rogue clients ---------------------------------------------------------------


def write_leaf(directory: Path, ca: CertificateAuthority, service: str, *, now: float | None = None,
               ttl: float = 3600.0, name: str = "leaf") -> tuple[Path, Path]:
    """A key and certificate for `service` signed by `ca`, as files (for openssl and ssl)."""
    key = new_key()
    issued = ca.sign(build_csr(key, spiffe_id(service)), service, now=now, ttl=ttl)
    creds = credentials(key, issued.pem, ca.bundle_pem)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(creds.cert_pem)
    key_path.write_bytes(creds.key_pem)
    return cert_path, key_path


def mtls_client_context(bundle_pem: str, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=bundle_pem)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def raw_exchange(address: str, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes over plain TCP, return whatever comes back before the peer closes (b"" if nothing)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


async def araw_exchange(address: str, payload: bytes, timeout: float = 5.0) -> bytes:
    return await asyncio.to_thread(raw_exchange, address, payload, timeout)
