"""AuthorizationPolicy: which requests a workload accepts, as Istio decides it.

A policy selects workloads (`selector.matchLabels`; without one, every
workload of its namespace; in the root namespace `istio-system`, every
workload of the mesh) and has an action — ALLOW, DENY or AUDIT — and rules.
A rule matches a request when one of its `from` sources, one of its `to`
operations and every one of its `when` conditions match; a missing list
matches anything, so `rules: [{}]` matches every request, while a policy with
no rules at all matches none — `spec: {}` (an ALLOW policy that allows
nothing) is Istio's "deny all". Inside a source or an operation every field
must match, and a field matches when any of its values does; its `notX` twin
matches when none does. The evaluation across policies lives in
minimesh/proxy/inbound/authz.py; this module only reads and checks the manifest and
compiles every matcher (attributes.py) once, at load time.

Refused, each with a sentence saying why: the CUSTOM action and `provider`
(minimesh has no external authorizer), `targetRef(s)` (Gateway API / waypoint
attachment), `serviceAccounts` and `trustDomains` in a source, and the
`connection.sni` condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .attributes import ConditionKey, IpMatch, PortMatch, StringMatch, parse_condition_key, values_matcher
from .fields import At, check_fields, enum, mapping, require, sequence, string, strings
from .resource import Labels, Resource
from .security import parse_selector

ACTIONS = ("ALLOW", "DENY", "AUDIT")
DRY_RUN_ANNOTATION = "istio.io/dry-run"


@dataclass(frozen=True)
class Check:
    """One field of a source or operation, or one `when` condition, compiled.

    `attribute` names what it reads off the request (proxy/inbound/authz.py's
    RequestFacts); `argument` is a header name or a claim's path.
    """

    field: str  # as written: "principals", "notPaths", "when[request.headers[x-user]]"
    attribute: str
    match: Any  # StringMatch, IpMatch or PortMatch
    negate: bool = False
    argument: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    sources: tuple[tuple[Check, ...], ...] = ()  # from[]: any one matching, each with every field matching
    operations: tuple[tuple[Check, ...], ...] = ()  # to[]
    conditions: tuple[Check, ...] = ()  # when[]: all of them


@dataclass(frozen=True, kw_only=True)
class AuthorizationPolicy(Resource):
    kind = "AuthorizationPolicy"
    selector: Labels | None = None  # None: every workload of the namespace (of the mesh, in istio-system)
    action: str = "ALLOW"
    rules: tuple[Rule, ...] = ()
    dry_run: bool = False  # istio.io/dry-run: evaluated and logged, never enforced

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


# field in from[].source -> (the request attribute it reads, its kind)
SOURCE_FIELDS = {
    "principals": ("principal", "string"),
    "namespaces": ("namespace", "string"),
    "ipBlocks": ("source_ip", "ip"),
    "remoteIpBlocks": ("remote_ip", "ip"),
    "requestPrincipals": ("request_principal", "string"),
}
OPERATION_FIELDS = {
    "hosts": ("host", "host"),
    "ports": ("port", "port"),
    "methods": ("method", "string"),
    "paths": ("path", "string"),
}
_REFUSED_SOURCE = {
    name: "minimesh does not implement it; name the peer with principals "
          "(cluster.local/ns/NAMESPACE/sa/ACCOUNT) or namespaces instead"
    for name in ("serviceAccounts", "notServiceAccounts", "trustDomains", "notTrustDomains")
}
# a `when` key -> the request attribute it reads
CONDITION_ATTRIBUTES = {
    "request.headers": "header", "source.ip": "source_ip", "remote.ip": "remote_ip",
    "source.namespace": "namespace", "source.principal": "principal",
    "request.auth.principal": "request_principal", "request.auth.audiences": "audiences",
    "request.auth.presenter": "presenter", "request.auth.claims": "claim",
    "destination.ip": "destination_ip", "destination.port": "port",
}


def parse_authorization_policy(spec: dict, at: At, **meta) -> AuthorizationPolicy:
    for ref in ("targetRef", "targetRefs"):
        if ref in spec:
            raise (at / ref).error(
                f"'{ref}' is not supported: on Istio it attaches the policy to a Gateway API Gateway or a "
                "Service's waypoint (ambient mode), which minimesh has none of; select workloads with "
                "selector.matchLabels instead")
    if "provider" in spec and spec.get("action") != "CUSTOM":
        raise (at / "provider").error("'provider' belongs to the CUSTOM action, which minimesh does not "
                                      "support; Istio also refuses it with ALLOW, DENY or AUDIT")
    check_fields(spec, at, ("selector", "action", "rules", "provider"))
    action = "ALLOW"
    if "action" in spec:
        if spec["action"] == "CUSTOM":
            raise (at / "action").error(
                "action CUSTOM is not supported: on Istio it hands the decision to an external authorizer "
                "named in `provider` (meshConfig extensionProviders), and minimesh has none; use ALLOW or DENY")
        action = enum(spec["action"], at / "action", ACTIONS)
    rules = tuple(_parse_rule(r, at / "rules" / i) for i, r in enumerate(sequence(spec.get("rules"), at / "rules")))
    return AuthorizationPolicy(selector=parse_selector(spec, at), action=action, rules=rules,
                               dry_run=dry_run_of(meta.get("manifest", {}), at), **meta)


def dry_run_of(manifest: dict, at: At) -> bool:
    """The `istio.io/dry-run` annotation: "true" or "false" (Istio refuses anything else)."""
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    where = At(at.source, at.lines, ("metadata", "annotations", DRY_RUN_ANNOTATION))
    if not isinstance(annotations, dict) or DRY_RUN_ANNOTATION not in annotations:
        return False
    value = annotations[DRY_RUN_ANNOTATION]
    if value not in ("true", "false"):
        raise where.error(f"must be \"true\" or \"false\" (quoted: annotations are strings), got {value!r}")
    return value == "true"


def _parse_rule(value: Any, at: At) -> Rule:
    block = mapping(value, at)
    check_fields(block, at, ("from", "to", "when"))
    sources = tuple(_parse_entry(item, at / "from" / i, "source", SOURCE_FIELDS, _REFUSED_SOURCE)
                    for i, item in enumerate(sequence(block.get("from"), at / "from")))
    operations = tuple(_parse_entry(item, at / "to" / i, "operation", OPERATION_FIELDS, {})
                       for i, item in enumerate(sequence(block.get("to"), at / "to")))
    conditions = tuple(_parse_condition(item, at / "when" / i)
                       for i, item in enumerate(sequence(block.get("when"), at / "when")))
    return Rule(sources, operations, conditions)


def _parse_entry(value: Any, at: At, name: str, fields: dict, refused: dict) -> tuple[Check, ...]:
    """One from[] / to[] item: {source: {...}} or {operation: {...}}, every field compiled."""
    entry = mapping(value, at)
    check_fields(entry, at, (name,))
    where = at / name
    block = mapping(require(entry, name, at), where)
    for key in block:
        if key in refused:
            raise (where / key).error(f"'{key}' is not supported: {refused[key]}")
    check_fields(block, where, [f for plain in fields for f in (plain, "not" + plain[0].upper() + plain[1:])])
    if not block:
        raise where.error(f"'{name}' must not be empty (Istio refuses it); drop the item to match anything")
    checks = []
    for key, raw in block.items():
        negate = key.startswith("not") and key[3:4].isupper()
        plain = key[3].lower() + key[4:] if negate else key
        attribute, kind = fields[plain]
        values = strings(raw, where / key)
        if not values:
            raise (where / key).error("must list at least one value (Istio refuses an empty list)")
        checks.append(Check(key, attribute, _matcher(kind, values, where / key), negate))
    return tuple(checks)


def _matcher(kind: str, values: tuple[str, ...], at: At):
    if kind == "ip":
        return IpMatch(values, at)
    if kind == "port":
        return PortMatch(values, at)
    if kind == "string" and at.path[-1] in ("paths", "notPaths"):
        for i, path in enumerate(values):
            if "{" in path:
                raise (at / i).error(f"path template {path!r} is not supported by minimesh; Istio 1.22+ "
                                     "matches {*} and {**} segments — use a prefix like /api/* instead")
    return StringMatch(values, fold=kind == "host")


def _parse_condition(value: Any, at: At) -> Check:
    block = mapping(value, at)
    check_fields(block, at, ("key", "values", "notValues"))
    text = string(require(block, "key", at), at / "key")
    key: ConditionKey = parse_condition_key(text, at / "key")
    values, not_values = strings(block.get("values"), at / "values"), strings(block.get("notValues"), at / "notValues")
    if not values and not not_values:
        raise at.error(f"condition '{text}' needs values or notValues (Istio refuses one with neither)")
    attribute = CONDITION_ATTRIBUTES[key.attribute]
    match = values_matcher(key, values, at / "values") if values else None
    unmatch = values_matcher(key, not_values, at / "notValues") if not_values else None
    return Check(f"when[{text}]", attribute, Condition(match, unmatch), argument=key.argument)


class Condition:
    """values / notValues of one `when`: some value matches (if any are listed) and no notValue does."""

    __slots__ = ("values", "not_values")

    def __init__(self, values, not_values):
        self.values, self.not_values = values, not_values

    def __call__(self, value) -> bool:
        return ((self.values is None or self.values(value))
                and (self.not_values is None or not self.not_values(value)))
