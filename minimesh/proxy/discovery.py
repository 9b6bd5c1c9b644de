"""The sidecar's side of the control plane: register, heartbeat, watch, ACK.

Theory of operation. A sidecar knows nothing of the mesh when it starts. It
registers its instance (and re-registers every second: that is the
heartbeat, and after a control-plane restart it is also how the new control
plane learns about us again). In parallel it long-polls `/v1/watch` with the
version of the snapshot it holds; the control plane answers when there is a
different one. Each snapshot is parsed in full (snapshot.py) before it
replaces the current one: if it parses, the sidecar ACKs it; if not, it NACKs
with the reason and keeps serving with the last good one — as Envoy does
with xDS.

If the control plane is unreachable, nothing changes for traffic: the last
snapshot keeps serving, and the loops retry with a capped backoff, logging
once when the control plane goes away and once when it is back.
"""

from __future__ import annotations

import asyncio
import logging

from minimesh.errors import ConfigError
from minimesh.config import DEFAULT_NAMESPACE
from minimesh.proxy.control_channel import ControlCallFailed, ControlChannel
from minimesh.proxy.snapshot import MeshConfig, parse_snapshot

log = logging.getLogger("minimesh.proxy")

HEARTBEAT_INTERVAL = 1.0
WATCH_TIMEOUT = 30.0


class ConfigHolder:
    """The snapshot in force. Layers read `.current` once per request."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE):
        self.namespace = namespace  # the proxy's: snapshots are read from it (snapshot.py)
        self.current = MeshConfig(namespace=namespace)
        self.raw: dict | None = None
        self.last_nack: dict | None = None
        self.received = asyncio.Event()
        self.on_change: list = []  # called with each snapshot put in force (outlier.Outliers.sync)


class Refused(Exception):
    """The control plane answered with an error status."""


class ControlPlaneClient:
    def __init__(self, channel: ControlChannel, registration: dict, holder: ConfigHolder):
        self.channel = channel  # HTTP(S) to the control plane, with our certificate (control_channel.py)
        self.url = channel.url
        self.registration = registration
        self.node = registration["instance"]
        self.holder = holder
        self.registered = asyncio.Event()
        self.reachable = True
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._heartbeat(), name="heartbeat"),
                       asyncio.create_task(self._watch(), name="watch")]

    async def stop(self, deregister: bool = True) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if deregister:
            try:
                await self.channel.call("DELETE", f"/v1/instances/{self.node}", timeout=2)
            except ControlCallFailed:
                pass  # the registry's expiry will notice we are gone

    async def _heartbeat(self) -> None:
        while True:
            try:
                answer = await self.channel.call("POST", "/v1/register", self.registration, timeout=5)
                if answer.status >= 400:
                    log.error("control plane refused our registration: %s", answer.text())
                    raise Refused(f"registration answered {answer.status}")
                self.registered.set()
                self._back()
            except (ControlCallFailed, Refused) as e:
                self._gone(e)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def _watch(self) -> None:
        delay = 0.2
        while True:
            try:
                # After a NACK we ask past the bad version, so only a newer
                # snapshot wakes us, not the same bad one again.
                version = self.holder.last_nack["version"] if self.holder.last_nack else self.holder.current.version
                params = {"node": self.node, "version": version, "timeout": str(WATCH_TIMEOUT)}
                answer = await self.channel.call("GET", "/v1/watch", params=params, timeout=WATCH_TIMEOUT + 10)
                if answer.status >= 400:
                    raise Refused(f"watch answered {answer.status}: {answer.text()[:200]}")
                doc = answer.json() if answer.status == 200 else None
                if doc is not None:
                    await self._take(doc)
                self._back()
                delay = 0.2
            except (ControlCallFailed, Refused, ValueError) as e:
                self._gone(e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception:  # a bug must not end the watch: log it, keep the last good config
                log.exception("watch failed; keeping snapshot %s", self.holder.current.version or "none")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _take(self, doc: dict) -> None:
        version = str(doc.get("version", ""))
        try:
            config = parse_snapshot(doc, self.holder.namespace)
        except ConfigError as e:
            log.warning("NACK snapshot %s: %s (keeping %s)", version, e, self.holder.current.version or "nothing")
            self.holder.last_nack = {"version": version, "error": str(e)}
            await self._ack(version, str(e))
            return
        self.holder.current = config
        self.holder.raw = doc
        self.holder.received.set()
        for changed in self.holder.on_change:
            changed(config)
        if config.quarantined:
            # The rest applies; the unusable entries are named in a NACK, so the operator sees them.
            why = "quarantined " + "; ".join(config.quarantined)
            log.warning("snapshot %s applied without %d unusable entr%s: %s", version, len(config.quarantined),
                        "y" if len(config.quarantined) == 1 else "ies", why)
            self.holder.last_nack = {"version": version, "error": why}
            await self._ack(version, why)
            return
        self.holder.last_nack = None
        log.info("ACK snapshot %s (config version %s)", version, config.config_version)
        await self._ack(version, None)

    async def _ack(self, version: str, error: str | None) -> None:
        try:
            await self.channel.call("POST", "/v1/ack", {"node": self.node, "version": version, "error": error},
                                    timeout=5)
        except ControlCallFailed:
            pass  # the next snapshot's ACK will tell the control plane

    def _gone(self, error: Exception) -> None:
        if self.reachable:
            log.warning("control plane %s unreachable (%s); serving with snapshot %s",
                        self.url, error or type(error).__name__, self.holder.current.version or "none")
        self.reachable = False

    def _back(self) -> None:
        if not self.reachable:
            log.info("control plane %s reachable again", self.url)
        self.reachable = True
