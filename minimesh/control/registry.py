"""The service registry: which instances are alive, and where they listen.

A sidecar (or the gateway) registers itself and then repeats the very same
call about once a second; that repetition *is* the heartbeat. Registration is
idempotent on purpose: after a control plane restart the registry is empty,
and the next heartbeat of every sidecar refills it without any special
"re-register" path. An instance that stays silent for `ttl` seconds is
expired — the mesh's equivalent of Kubernetes removing a pod from an
Endpoints object when its readiness lapses.

Every change that someone watching could notice (an instance joins, leaves,
expires, or comes back with different addresses or labels) bumps
`generation`; a heartbeat that changes nothing does not, so a steady mesh
pushes no snapshots. Time comes from an injected `clock`, so expiry is tested
without sleeping.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

from minimesh.control import admission
from minimesh.control.admission import InvalidRegistration
from minimesh.pki.spiffe import account_key, service_of, spiffe_id

KINDS = ("sidecar", "gateway")
ADDRESS_ROLES = ("app", "inbound", "outbound", "admin")


@dataclass(frozen=True)
class Registration:
    """What an instance says about itself when it registers."""

    service: str
    version: str
    instance: str
    kind: str
    labels: dict[str, str]
    addresses: dict[str, str | None]
    identity: str | None = None  # the SPIFFE ID it holds a certificate for (None: no mTLS)
    namespace: str = "default"
    service_account: str | None = None  # None: the service's name, as the runner gives every service

    @property
    def account(self) -> str:
        """The account key its identity must name (pki/spiffe.py): 'web', 'foo/catalog'."""
        return account_key(self.namespace, self.service_account or self.service)


@dataclass(frozen=True)
class Instance:
    """A registered instance, with the times the registry keeps about it."""

    registration: Registration
    registered_at: float
    last_seen: float

    @property
    def name(self) -> str:
        return self.registration.instance

    def to_json(self, now: float) -> dict:
        r = self.registration
        return {
            "service": r.service, "namespace": r.namespace, "version": r.version, "instance": r.instance,
            "kind": r.kind,
            "labels": dict(r.labels), "addresses": dict(r.addresses), "identity": r.identity,
            "age_s": round(now - self.registered_at, 3),
            "last_heartbeat_s": round(now - self.last_seen, 3),
        }


def parse_registration(body: object) -> Registration:
    """Validate a /v1/register body (admission.py's rules); labels always carry app= and version=."""
    if not isinstance(body, dict):
        raise InvalidRegistration("register body must be a JSON object")
    for key in ("service", "version", "instance"):
        if not isinstance(body.get(key), str) or not body.get(key):
            raise InvalidRegistration(f"register: {key!r} must be a non-empty string")
    fields = {"service": admission.dns1123_label(body["service"], "service"),
              "version": admission.dns1123_label(body["version"], "version"),
              "instance": admission.dns1123_subdomain(body["instance"], "instance")}
    kind = body.get("kind", "sidecar")
    if kind not in KINDS:
        raise InvalidRegistration(f"register: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    labels = admission.labels(body.get("labels") or {})
    addresses = body.get("addresses") or {}
    if not isinstance(addresses, dict):
        raise InvalidRegistration("register: addresses must be an object")
    unknown = set(addresses) - set(ADDRESS_ROLES)
    if unknown:
        raise InvalidRegistration(f"register: unknown address role(s): {', '.join(sorted(map(repr, unknown)))}")
    for role, addr in addresses.items():
        if addr is not None:
            admission.host_port(addr, f"addresses.{role}")
    fields["namespace"] = admission.dns1123_label(body.get("namespace") or "default", "namespace")
    if body.get("serviceAccount") is not None:
        fields["service_account"] = admission.dns1123_subdomain(body["serviceAccount"], "serviceAccount")
    account = account_key(fields["namespace"], fields.get("service_account") or fields["service"])
    identity = body.get("identity")
    if identity is not None and (not isinstance(identity, str) or service_of(identity) != account):
        raise InvalidRegistration(f"register: identity {admission.show(identity)} must be null or "
                                  f"{spiffe_id(account)}, the SPIFFE ID of account {account!r}")
    # The workload labels every selector can rely on, as Istio's app/version labels.
    labels = {**labels, "app": labels.get("app", fields["service"]),
              "version": labels.get("version", fields["version"])}
    return Registration(kind=kind, labels=labels, identity=identity,
                        addresses={role: addresses.get(role) for role in ADDRESS_ROLES}, **fields)


class Registry:
    """Instances keyed by name; expiry and a change generation."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self.generation = 0
        self._instances: dict[str, Instance] = {}

    def register(self, reg: Registration) -> bool:
        """Record a registration or heartbeat; True when watchers should hear of it."""
        now = self.clock()
        old = self._instances.get(reg.instance)
        if old is not None and old.registration == reg:
            self._instances[reg.instance] = dataclasses.replace(old, last_seen=now)
            return False
        registered_at = old.registered_at if old is not None else now
        self._instances[reg.instance] = Instance(reg, registered_at=registered_at, last_seen=now)
        self.generation += 1
        return True

    def deregister(self, name: str) -> Instance | None:
        """A graceful leave; returns the instance that left, or None if unknown."""
        gone = self._instances.pop(name, None)
        if gone is not None:
            self.generation += 1
        return gone

    def expire(self) -> list[Instance]:
        """Remove every instance silent for longer than the TTL, and return them."""
        now = self.clock()
        expired = [i for i in self._instances.values() if now - i.last_seen > self.ttl]
        for inst in expired:
            del self._instances[inst.name]
        if expired:
            self.generation += 1
        return expired

    def get(self, name: str) -> Instance | None:
        return self._instances.get(name)

    def instances(self) -> list[Instance]:
        return sorted(self._instances.values(), key=lambda i: i.name)
