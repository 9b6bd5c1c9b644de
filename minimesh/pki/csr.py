"""The key maker: a short-lived child process that makes a sidecar's key and CSR, and checks what comes back.

Theory of operation. `cryptography` costs ~10 MB of resident memory in
every process that imports it, and a sidecar — one beside every app
instance — needs it only for a moment per certificate: to make a key, sign
a CSR with it, and read the certificate the CA returns. So the sidecar
starts `python -m minimesh.pki.workload SPIFFE-ID` for each certificate and
speaks to it in JSON lines over its stdin and stdout:

    key maker -> sidecar   {"csr": PEM}                      a fresh P-256 key's CSR
    sidecar -> key maker   {"certificate": PEM, "trust_bundle": PEM}
    key maker -> sidecar   {"key_pem": ..., "cert_pem": ..., "serial": ..., ...}  (workload.credentials)
                        or {"error": "the signed certificate is not for our key"}

and the key maker exits. The key crosses that one pipe, never a disk or the
network. The same key maker (the same key and CSR) serves the retries
while the control plane is away; a key still never outlives the one
certificate it is for.
"""

from __future__ import annotations

import asyncio
import json
import sys

from minimesh.pki.credentials import Credentials

MAKE_TIMEOUT = 30.0  # seconds for the child to start and make a key, on a very busy machine


class KeyMakerFailed(ValueError):
    """The key maker died, or said the certificate does not fit."""


class KeyMaker:
    """One child process, one key, one certificate."""

    def __init__(self, process: asyncio.subprocess.Process, csr: str):
        self.process, self.csr = process, csr

    @classmethod
    async def start(cls, identity: str) -> "KeyMaker":
        # -P: the working directory is not put ahead on sys.path, so the child imports the minimesh its
        # parent did (installed, or PYTHONPATH), not some other checkout it happens to run in.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "minimesh.pki.workload", identity,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        maker = cls(process, "")
        maker.csr = (await maker._read())["csr"]
        return maker

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    async def credentials(self, cert_pem: str, bundle_pem: str) -> Credentials:
        """Hand the signed certificate to the key maker; its key and the certificate's facts come back."""
        self.process.stdin.write(json.dumps({"certificate": cert_pem, "trust_bundle": bundle_pem}).encode() + b"\n")
        await self.process.stdin.drain()
        facts = await self._read()
        await self.close()
        if "error" in facts:
            raise KeyMakerFailed(facts["error"])
        return Credentials(key_pem=facts["key_pem"].encode(), cert_pem=facts["cert_pem"].encode(),
                           bundle_pem=facts["bundle_pem"], identity=facts["identity"], serial=facts["serial"],
                           not_before=facts["not_before"], not_after=facts["not_after"])

    async def _read(self) -> dict:
        try:
            async with asyncio.timeout(MAKE_TIMEOUT):
                line = await self.process.stdout.readline()
        except TimeoutError:
            await self.close()
            raise KeyMakerFailed(f"the key maker said nothing within {MAKE_TIMEOUT:g}s") from None
        if not line:
            await self.close()
            raise KeyMakerFailed(f"the key maker exited ({self.process.returncode}) without an answer; "
                                 "its error is in this sidecar's log")
        return json.loads(line)

    async def close(self) -> None:
        """End the child (it has answered, or is no longer needed) and reap it."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()  # a key maker still waiting for a certificate exits on EOF
        try:
            async with asyncio.timeout(2):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
