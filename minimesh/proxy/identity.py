"""The sidecar's own identity: its certificate, fetched at start and renewed at half-life.

Theory of operation. At start the sidecar makes a key, sends a CSR with its
join token to the control plane (`POST /v1/sign`), and gets back an
X.509-SVID and the trust bundle. From those it builds its TLS contexts once
(tls.py). Then it sleeps until the certificate's half-life and does it all
again with a fresh key. The new contexts replace the old ones in one
assignment, so:

- a connection accepted or opened after the swap uses the new certificate;
- a connection opened before keeps its TLS session — an established session
  never looks at the certificate again — and lives until it is closed;
- no request is ever between two certificates, so none is dropped.

If the control plane is away when renewal is due, the sidecar keeps its
current certificate and retries with a capped backoff; there is half a
lifetime of margin before it expires. A 403 (the token is not valid for this
service) at start is fatal: nothing will change it but the operator.

The same certificate is how the sidecar proves itself to the control plane
(`control_tls`): the join token opens only /v1/sign, for the first
certificate; every later call — renewals included — presents the SVID. The
control plane itself is verified against `control_ca`, the mesh's root
certificate handed to the sidecar beside its token (a Kubernetes pod gets
istio-ca-root-cert the same way).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time

from minimesh.errors import UserError
from minimesh.pki.control_tls import client_context
from minimesh.pki.credentials import Credentials
from minimesh.pki.csr import KeyMaker
from minimesh.pki.spiffe import spiffe_id
from minimesh.proxy.control_channel import ControlCallFailed, ControlChannel
from minimesh.proxy.transport.tls import TLSContexts

log = logging.getLogger("minimesh.pki")

RETRY_MIN, RETRY_MAX = 0.5, 5.0


class JoinRefused(Exception):
    """The control plane answered 403: no certificate for this token."""


# What a try at a certificate may end with, short of a refusal: retried with a backoff.
FETCH_FAILED = (ControlCallFailed, OSError, ValueError, KeyError)


def reason(error: BaseException) -> str:
    """Why a request to the control plane failed, never empty (a bare ServerDisconnectedError has no text)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def renewal_delay(creds: Credentials, now: float) -> float:
    """Seconds until renewal is due (half-life), never negative."""
    return max(0.0, creds.renew_at - now)


def retry_delay(failures: int, creds: Credentials | None, now: float) -> float:
    """Backoff after `failures` failed tries; never longer than a tenth of what is left."""
    delay = min(RETRY_MAX, RETRY_MIN * 2 ** max(0, failures - 1))
    if creds is not None:
        delay = min(delay, max(RETRY_MIN, (creds.not_after - now) / 10))
    return delay


class WorkloadIdentity:
    def __init__(self, control_url: str, service: str, instance: str, token: str,
                 clock=time.time, sleep=asyncio.sleep, control_ca: str | None = None,
                 channel: ControlChannel | None = None):
        self.url = control_url.rstrip("/")
        # HTTP(S) to the control plane, verified and signed by what control_tls() says (control_channel.py)
        self.channel = channel or ControlChannel(control_url)
        self.channel.tls = self.control_tls
        self._maker: KeyMaker | None = None  # the key maker of the certificate being asked for (csr.py)
        self.control_ca = control_ca  # PEM: the root the control plane's certificate must chain to
        self._control_tls: ssl.SSLContext | None = None
        self.service, self.instance, self._token = service, instance, token
        self.identity = spiffe_id(service)
        self.clock, self.sleep = clock, sleep
        self.current: Credentials | None = None
        self._contexts: TLSContexts | None = None
        self.serials: collections.deque[str] = collections.deque(maxlen=64)  # newest last
        self.renewals = 0
        self.on_change = lambda creds: None  # the sidecar re-reports its certificate
        self._task: asyncio.Task | None = None
        self._expired_serial: str | None = None

    # --- what the data plane reads --------------------------------------------------

    def contexts(self, config=None) -> TLSContexts | None:
        """The TLS contexts in force; rebuilt here if the snapshot brings a new trust bundle."""
        ctx = self._contexts
        bundle = getattr(config, "trust_bundle", "")
        if ctx is not None and bundle and bundle != ctx.bundle_pem:
            log.info("trust bundle changed in the snapshot; rebuilding TLS contexts")
            ctx = self._contexts = TLSContexts(ctx.creds, bundle)
        return ctx

    def control_tls(self) -> ssl.SSLContext | None:
        """How to call the control plane: verify it by the mesh CA; present our SVID once we hold one."""
        if not self.url.startswith("https://"):
            return None
        if self._control_tls is None:
            if not self.control_ca:
                raise UserError("no CA certificate to verify the control plane by: pass --control-ca FILE "
                                "(MINIMESH_CONTROL_CA), or set MINIMESH_HOME to the stack's home")
            # An expired SVID would only get the handshake refused: without one, the join token speaks.
            valid = self.current is not None and self.current.not_after > self.clock()
            chain = self.current.key_pem + self.current.cert_pem if valid else None
            self._control_tls = client_context(self.control_ca, chain)
        return self._control_tls

    def summary(self) -> dict | None:
        if self.current is None:
            return None
        return {**self.current.summary(self.clock()), "renewals": self.renewals}

    # --- getting a certificate ---------------------------------------------------------

    async def fetch(self) -> Credentials:
        maker = self._maker
        if maker is None or maker.exited:  # a fresh key per certificate: a key never outlives its certificate
            maker = self._maker = await KeyMaker.start(self.identity)
        body = {"service": self.service, "instance": self.instance, "csr": maker.csr}
        # A renewal proves itself with the certificate it still holds; the token is for the first one
        # (and for a sidecar whose certificate ran out while the control plane was away).
        holding = self.current is not None and self.current.not_after > self.clock() + 1
        headers = {} if holding else {"Authorization": f"Bearer {self._token}"}
        reply = await self.channel.call("POST", "/v1/sign", body, headers=headers, timeout=10)
        answer = reply.json()
        if reply.status == 403:
            raise JoinRefused(answer.get("error", "403"))
        if reply.status != 200:
            raise ControlCallFailed(f"/v1/sign answered {reply.status}: {answer.get('error')}")
        self._maker = None  # this key is spent on this certificate, whatever the check says
        return await maker.credentials(answer["certificate"], "".join(answer["trust_bundle"]))

    def install(self, creds: Credentials) -> None:
        """Swap in new credentials: one assignment, so no request sees half of it."""
        bundle = self._contexts.bundle_pem if self._contexts else creds.bundle_pem
        self._contexts = TLSContexts(creds, bundle or creds.bundle_pem)
        self.current = creds
        self._control_tls = None  # the next call to the control plane presents the new certificate
        self.serials.append(creds.serial)
        log.info("certificate %s serial %s, valid until %s (renewal in %.1fs)", creds.identity, creds.serial,
                 time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(creds.not_after)), renewal_delay(creds, self.clock()))
        self.on_change(creds)

    async def obtain(self) -> None:
        """Get the first certificate, retrying while the control plane is unreachable."""
        failures = 0
        while True:
            try:
                self.install(await self.fetch())
                return
            except JoinRefused as e:
                raise UserError(f"the control plane refused a certificate for {self.service}: {e}") from e
            except FETCH_FAILED as e:
                failures += 1
                delay = retry_delay(failures, None, self.clock())
                log.warning("cannot get a certificate yet (%s); retrying in %.1fs", reason(e), delay)
                await self.sleep(delay)

    async def renew_forever(self) -> None:
        failures = 0
        while True:
            delay = (renewal_delay(self.current, self.clock()) if failures == 0
                     else retry_delay(failures, self.current, self.clock()))
            await self.sleep(delay)
            try:
                self.install(await self.fetch())
                self.renewals += 1
                failures = 0
            except (JoinRefused, *FETCH_FAILED) as e:
                failures += 1
                left = self.current.not_after - self.clock()
                if left > 0:
                    log.warning("certificate renewal failed (%s); keeping serial %s (%.0fs left)",
                                reason(e), self.current.serial, left)
                else:
                    self.expired(reason(e))

    def expired(self, why: str) -> None:
        """Our certificate ran out with no new one: stop using the connections it opened.

        Fresh contexts (the same, expired credentials) make fresh connection
        pools, so every next request opens a new TLS session — which each
        peer refuses, as it must ("certificate has expired"), instead of the
        shop carrying on over sessions made while the certificate was valid.
        Logged once per certificate; renewal keeps being retried.
        """
        if self._expired_serial == self.current.serial:
            return
        self._expired_serial = self.current.serial
        log.error("certificate serial %s EXPIRED and renewal failed (%s): peers will refuse this sidecar's "
                  "new connections until the control plane signs a new one", self.current.serial, why)
        bundle = self._contexts.bundle_pem if self._contexts else self.current.bundle_pem
        self._contexts = TLSContexts(self.current, bundle)
        self._control_tls = None  # renewal goes on with the join token, presenting no expired certificate

    def start_renewing(self) -> None:
        self._task = asyncio.create_task(self.renew_forever(), name="certificate renewal")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._maker is not None:
            await self._maker.close()
            self._maker = None
