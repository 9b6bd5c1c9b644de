"""PeerAuthentication and AuthorizationPolicy: who may talk to a workload.

PeerAuthentication says whether a workload's inbound side demands mutual TLS
(STRICT), takes both mTLS and plaintext (PERMISSIVE) or only plaintext
(DISABLE). UNSET inherits: a workload-selecting policy beats a
namespace-wide one, and with none at all Istio behaves as PERMISSIVE.

AuthorizationPolicy then decides, per request, from the peer's proven
identity and the request itself. Istio's evaluation, which the proxy applies
across all policies selecting a workload: any matching DENY policy denies;
else, if there is no ALLOW policy, allow; else allow only when some ALLOW
policy matches. Inside one policy a rule matches when one of its `from`
entries and one of its `to` entries match (a missing list matches anything);
a policy with no rules matches nothing — so an ALLOW policy with
`spec: {}` denies everything, Istio's "deny all" idiom.
"""

from dataclasses import dataclass
from typing import Any

from .fields import At, check_fields, enum, labels, mapping, sequence, strings
from .resource import Labels, Resource

MTLS_MODES = ("STRICT", "PERMISSIVE", "DISABLE", "UNSET")
AUTHZ_ACTIONS = ("ALLOW", "DENY")


@dataclass(frozen=True, kw_only=True)
class PeerAuthentication(Resource):
    kind = "PeerAuthentication"
    selector: Labels | None = None  # None: the whole namespace
    mtls_mode: str = "UNSET"


def _glob(pattern: str, value: str) -> bool:
    """Istio's string match for principals and paths: exact, "prefix*", "*suffix" or "*"."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


@dataclass(frozen=True)
class Source:
    principals: tuple[str, ...] = ()  # like "cluster.local/ns/default/sa/web"

    def matches(self, principal: str | None) -> bool:
        if not self.principals:
            return True
        return principal is not None and any(_glob(p, principal) for p in self.principals)


@dataclass(frozen=True)
class Operation:
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def matches(self, method: str, path: str) -> bool:
        path = path.split("?", 1)[0]
        return (not self.methods or method in self.methods) and (
            not self.paths or any(_glob(p, path) for p in self.paths)
        )


@dataclass(frozen=True)
class Rule:
    sources: tuple[Source, ...] = ()  # from[].source
    operations: tuple[Operation, ...] = ()  # to[].operation

    def matches(self, principal: str | None, method: str, path: str) -> bool:
        return (not self.sources or any(s.matches(principal) for s in self.sources)) and (
            not self.operations or any(o.matches(method, path) for o in self.operations)
        )


@dataclass(frozen=True, kw_only=True)
class AuthorizationPolicy(Resource):
    kind = "AuthorizationPolicy"
    selector: Labels | None = None
    action: str = "ALLOW"
    rules: tuple[Rule, ...] = ()

    def matches(self, principal: str | None, method: str, path: str) -> bool:
        return any(rule.matches(principal, method, path) for rule in self.rules)


def parse_selector(spec: dict, at: At) -> Labels | None:
    if "selector" not in spec:
        return None
    block = mapping(spec["selector"], at / "selector")
    check_fields(block, at / "selector", ("matchLabels",))
    return Labels(labels(block.get("matchLabels"), at / "selector" / "matchLabels"))


def parse_peer_authentication(spec: dict, at: At, **meta) -> PeerAuthentication:
    check_fields(spec, at, ("selector", "mtls"), ("portLevelMtls",))
    mode = "UNSET"
    if "mtls" in spec:
        mtls = mapping(spec["mtls"], at / "mtls")
        check_fields(mtls, at / "mtls", ("mode",))
        if "mode" in mtls:
            mode = enum(mtls["mode"], at / "mtls" / "mode", MTLS_MODES)
    return PeerAuthentication(selector=parse_selector(spec, at), mtls_mode=mode, **meta)


def parse_authorization_policy(spec: dict, at: At, **meta) -> AuthorizationPolicy:
    check_fields(spec, at, ("selector", "action", "rules"), ("provider", "targetRef", "targetRefs"))
    action = enum(spec["action"], at / "action", AUTHZ_ACTIONS, ("AUDIT", "CUSTOM")) if "action" in spec else "ALLOW"
    rules = tuple(_parse_rule(r, at / "rules" / i) for i, r in enumerate(sequence(spec.get("rules"), at / "rules")))
    return AuthorizationPolicy(selector=parse_selector(spec, at), action=action, rules=rules, **meta)


_SOURCE_ISTIO_ONLY = (
    "ipBlocks", "namespaces", "notIpBlocks", "notNamespaces", "notPrincipals", "notRemoteIpBlocks",
    "notRequestPrincipals", "notServiceAccounts", "notTrustDomains", "remoteIpBlocks", "requestPrincipals",
    "serviceAccounts", "trustDomains",
)
_OPERATION_ISTIO_ONLY = ("hosts", "notHosts", "notMethods", "notPaths", "notPorts", "ports")


def _parse_rule(value: Any, at: At) -> Rule:
    block = mapping(value, at)
    check_fields(block, at, ("from", "to"), ("when",))
    sources = []
    for i, item in enumerate(sequence(block.get("from"), at / "from")):
        entry = mapping(item, at / "from" / i)
        check_fields(entry, at / "from" / i, ("source",))
        where = at / "from" / i / "source"
        source = mapping(entry.get("source"), where)
        check_fields(source, where, ("principals",), _SOURCE_ISTIO_ONLY)
        sources.append(Source(strings(source.get("principals"), where / "principals")))
    operations = []
    for i, item in enumerate(sequence(block.get("to"), at / "to")):
        entry = mapping(item, at / "to" / i)
        check_fields(entry, at / "to" / i, ("operation",))
        where = at / "to" / i / "operation"
        operation = mapping(entry.get("operation"), where)
        check_fields(operation, where, ("methods", "paths"), _OPERATION_ISTIO_ONLY)
        operations.append(Operation(strings(operation.get("methods"), where / "methods"),
                                    strings(operation.get("paths"), where / "paths")))
    return Rule(tuple(sources), tuple(operations))
