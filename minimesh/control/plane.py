"""The control plane's state in one place: registry, config store, ACKs, watch feed.

Every mutation goes through here so that none can forget the two duties that
follow a change: log it, and wake the watches (`feed.notify()`). The HTTP
handlers in `api.py` only translate JSON to these calls and back.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import Callable

from minimesh.control.acks import AckBook
from minimesh.control.registry import Instance, Registration, Registry
from minimesh.control.rollout import Rollout, RolloutBook
from minimesh.control.signing import Signer
from minimesh.control.snapshot import build_snapshot, config_version_of, secrets_for, snapshot_version
from minimesh.control.store import ApplyResult, ConfigStore
from minimesh.control.watch import ChangeFeed, held_for_warmup

log = logging.getLogger("minimesh.control")


class ControlPlane:
    def __init__(self, home: Path, instance_ttl: float, warmup: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, cert_ttl: float = 24 * 3600.0):
        self.home = Path(home)
        self.clock = clock
        self.warmup = warmup
        self.started_at = clock()
        # A fresh token per start: the snapshot version never repeats across restarts.
        self.epoch = secrets.token_hex(4)
        self.registry = Registry(instance_ttl, clock)
        self.store = ConfigStore.load(self.home / "control" / "config.json")
        self.acks = AckBook()
        self.feed = ChangeFeed()
        self.signer = Signer(self.home / "control", cert_ttl)  # the mesh CA and join-token check
        self.certificates: dict[str, dict] = {}  # instance -> the certificate it last reported
        # Rollouts: which config version each proxy runs; wakes `/v1/rollout` waiters.
        self.rollouts = RolloutBook(clock)
        self.rollout_feed = ChangeFeed()
        # Which lesson this mesh runs (set by `minimesh up` and the compose files),
        # so `minimesh lesson check/step` of another lesson can say so.
        self.lesson = os.environ.get("MINIMESH_LESSON") or None

    # --- reading ---------------------------------------------------------

    @property
    def snapshot_version(self) -> str:
        return snapshot_version(self.store.version, self.epoch, self.registry.generation)

    def snapshot(self, gateway: bool = False) -> dict:
        """What a proxy receives; TLS Secrets only when it is the ingress gateway (`gateway`)."""
        return build_snapshot(self.snapshot_version, self.store.version, secrets_for(self.store.resources(), gateway),
                              self.registry.instances(), self.signer.trust_bundle)

    def held_for_warmup(self, client_version: str) -> bool:
        return held_for_warmup(self.clock(), self.started_at, self.warmup, client_version)

    def instance_json(self, inst: Instance) -> dict:
        return {**inst.to_json(self.clock()), **self.acks.get(inst.name).to_json(),
                "acked_config_version": self.rollouts.acked_config_version(inst.name)}

    def rollout(self, config_version: int) -> Rollout:
        """Where config `config_version` stands: which proxies ACKed, NACKed, or are still pending."""
        return self.rollouts.progress(config_version, [i.name for i in self.registry.instances()])

    def status(self) -> dict:
        now = self.clock()
        proxies = []
        for inst in self.registry.instances():
            reg = inst.registration
            proxies.append({"node": reg.instance, "service": reg.service, "namespace": reg.namespace,
                            "version": reg.version,
                            "kind": reg.kind, **self.acks.get(reg.instance).to_json(),
                            "acked_config_version": self.rollouts.acked_config_version(reg.instance),
                            "age_s": round(now - inst.registered_at, 3),
                            "identity": reg.identity, "certificate": self.certificates.get(reg.instance)})
        return {"config_version": self.store.version, "snapshot_version": self.snapshot_version,
                "lesson": self.lesson, "proxies": proxies}

    # --- changing --------------------------------------------------------

    def register(self, reg: Registration, certificate: dict | None = None) -> None:
        known = self.registry.get(reg.instance) is not None
        # The certificate changes at every rotation; it is reported, not part of
        # the registration, so a rotation pushes no new snapshot to anyone.
        if certificate is not None:
            self.certificates[reg.instance] = certificate
        if self.registry.register(reg):
            log.info("%s %s (%s %s %s) inbound=%s", "updated" if known else "registered", reg.instance,
                     reg.kind, reg.service, reg.version, reg.addresses.get("inbound"))
            self.feed.notify()
            self.rollout_feed.notify()

    def deregister(self, name: str) -> bool:
        gone = self.registry.deregister(name)
        if gone is None:
            return False
        self.acks.forget(name)
        self.certificates.pop(name, None)
        self.rollouts.forget(name)
        log.info("deregistered %s (%s)", name, gone.registration.service)
        self.feed.notify()
        self.rollout_feed.notify()
        return True

    def expire(self) -> list[Instance]:
        expired = self.registry.expire()
        for inst in expired:
            self.acks.forget(inst.name)
            self.certificates.pop(inst.name, None)
            self.rollouts.forget(inst.name)
            log.info("expired %s (%s): no heartbeat for %.1fs", inst.name, inst.registration.service,
                     self.registry.ttl)
        if expired:
            self.feed.notify()
            self.rollout_feed.notify()
        return expired

    def apply(self, manifests: list, source: str) -> ApplyResult:
        result = self.store.apply(manifests, source)
        if result.changed:
            self.rollouts.committed(result.version)
            self.feed.notify()
        return result

    def delete(self, kind: str, name: str, namespace: str) -> bool:
        if self.store.delete(kind, name, namespace) is None:
            return False
        self.rollouts.committed(self.store.version)
        self.feed.notify()
        return True

    def ack(self, node: str, version: str, error: str | None) -> None:
        self.acks.record(node, version, error)
        self.rollouts.record(node, config_version_of(version), error)
        self.rollout_feed.notify()
