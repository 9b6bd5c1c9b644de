"""Remembered AuthorizationPolicy decisions: the same question gets the same answer, once worked out.

Why. Checking a request against ten policies of five rules is 150 small
comparisons; in Python that costs more than the rest of the inbound hop
together. Envoy runs the same checks in C++; minimesh instead notices that a
workload gets the same few questions over and over — this caller, this
method, this path — and that a decision is a pure function of the request
attributes the policies read. So the decision is kept, keyed by exactly
those attributes, as the request carries them:

    policies read                  the key holds
    principals, namespaces         the peer's SPIFFE ID (from its certificate)
    ipBlocks, source.ip            the peer's address
    remoteIpBlocks, remote.ip      the peer's address and x-forwarded-for
    requestPrincipals, auth.*      the verified token's principal, audiences, presenter
    hosts, methods, paths          the Host, the method, the normalized path
    request.headers[NAME]          every value of that header
    ports, destination.*           nothing: they are the workload's own

Two requests with the same key get the same verdict — the cache cannot be
wrong, only missed. Policies that read JWT claims are not cached (a claim
can be any JSON). The cache belongs to one snapshot's policies, so a new
snapshot starts empty, and it is bounded: when full it is emptied, so a
client sending a new path every time costs a full check each time, never
memory.
"""

from __future__ import annotations

from typing import Callable

from minimesh.config.authorization import Check

MAX_ENTRIES = 4096


def _auth(name: str):
    return lambda request: getattr(request.journey.request_auth, name, None)


# attribute (config/authorization.py) -> what of the request determines it
_EXTRACTORS: dict[str, Callable] = {
    "principal": lambda request: request.journey.peer_identity,
    "namespace": lambda request: request.journey.peer_identity,
    "source_ip": lambda request: request.client,
    "remote_ip": lambda request: (request.client, request.headers.get("x-forwarded-for")),
    "request_principal": _auth("principal"),
    "audiences": _auth("audiences"),
    "presenter": _auth("presenter"),
    "host": lambda request: request.authority,
    "method": lambda request: request.method,
}
_CONSTANT = ("port", "destination_ip", "path")  # the workload's own, or passed in (the path)


def _header(name: str):
    return lambda request: tuple(request.headers.getall(name, ()))


class DecisionCache:
    def __init__(self, checks: list[Check]):
        attributes = {c.attribute for c in checks}
        unknown = attributes - set(_EXTRACTORS) - set(_CONSTANT) - {"header"}
        self.enabled = not unknown  # JWT claims (or anything not keyed above): always checked in full
        self.uses_path = "path" in attributes
        extractors = {name: _EXTRACTORS[name] for name in sorted(attributes) if name in _EXTRACTORS}
        for c in checks:
            if c.attribute == "header":
                extractors["header:" + c.argument[0]] = _header(c.argument[0])
        self.extractors = tuple(extractors.values())
        self.entries: dict = {}

    def key(self, request, path: str) -> tuple | None:
        if not self.enabled:
            return None
        return (path if self.uses_path else None, *[extract(request) for extract in self.extractors])

    def get(self, key):
        return self.entries.get(key) if key is not None else None

    def put(self, key, verdict) -> None:
        if key is None:
            return
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()
        self.entries[key] = verdict


def checks_of(policies) -> list[Check]:
    """Every compiled check of every rule of `policies`."""
    out = []
    for policy in policies:
        for rule in policy.rules:
            for group in (*rule.sources, *rule.operations, rule.conditions):
                out.extend(group)
    return out
