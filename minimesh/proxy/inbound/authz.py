"""AuthorizationPolicy in the data plane: may this request reach the workload?

Theory of operation. The destination's inbound sidecar (and the gateway, for
policies selecting it) decides every request, the way Envoy's RBAC filter
does, from facts it can stand behind: the caller's principal comes only from
the certificate it proved over mTLS (a plaintext caller has none), its
request principal only from a token jwt_authn.py verified.

Istio's evaluation, over the policies that apply to this workload:

    1. CUSTOM   — refused at apply: minimesh has no external authorizer
    2. DENY     — any matching rule of a DENY policy: denied
    3. ALLOW    — no ALLOW policy at all: allowed; else allowed only if a rule
                  of some ALLOW policy matches
    AUDIT never decides; a matching AUDIT rule only marks the access log.

A policy applies when it is in the workload's namespace or in the root
namespace `istio-system`, and its selector (if any) matches the workload's
labels. A policy annotated `istio.io/dry-run: "true"` is evaluated on its own
beside the real decision ("shadow rules" in Envoy) and only logged.

Denied: 403 with Envoy's body `RBAC: access denied` and flag RBAC. Istio
says only that; minimesh also names the policy and rule that decided, in the
access log, the tap and `x-minimesh-error` — and, when no ALLOW rule
matched, the first field of each rule that did not.

Which policies apply is worked out once per snapshot; the matchers were
compiled when the manifests were loaded (config/attributes.py), and a
decision, once made, is remembered for the next request that asks the same
question (authz_cache.py explains why that is exact).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Awaitable

from minimesh.config import AuthorizationPolicy
from minimesh.config.authorization import Check, Rule
from minimesh.config.security import WORKLOAD_PORT
from minimesh.errors import AccessDenied
from minimesh.pki.spiffe import principal as principal_of
from minimesh.proxy.inbound.authz_cache import DecisionCache, checks_of
from minimesh.proxy.message import Request, Response

ROOT_NAMESPACE = "istio-system"


@dataclass(frozen=True)
class Workload:
    """What a policy's scope and facts need to know about the workload a proxy serves."""

    labels: dict
    namespace: str = "default"
    # The workload port requests are for, as policies name it (`ports`, `destination.port`): the
    # container's port, not the Service's nor the one a local run happened to pick — 8080 for every
    # app (config/security.py), 8080 or 8443 at the gateway (gateway.POD_PORTS), as on Istio.
    port: int | None = WORKLOAD_PORT
    ip: str = "127.0.0.1"  # where callers reach it (destination.ip)


class RequestFacts:
    """The attributes of one request that policies test, named as config/authorization.py names them.

    The addresses are parsed only if a policy asks for them.
    """

    __slots__ = ("principal", "_namespace", "_client", "_remote", "request_principal", "audiences", "presenter",
                 "claims", "host", "port", "method", "path", "_destination", "headers")

    def __init__(self, *, principal=None, source_ip=None, remote_ip=None, auth=None, host="", port=None,
                 method="GET", path="/", destination_ip=None, headers=None):
        self.principal = principal
        self._namespace = False  # not worked out yet
        self._client, self._remote, self._destination = source_ip, remote_ip, destination_ip
        self.request_principal = auth.principal if auth else None
        self.audiences = auth.audiences if auth else None
        self.presenter = auth.presenter if auth else None
        self.claims = auth.claims if auth else None
        self.host, self.port, self.method, self.path = host, port, method, path
        self.headers = headers if headers is not None else {}

    @property
    def namespace(self):
        if self._namespace is False:
            self._namespace = namespace_of(self.principal)
        return self._namespace

    @property
    def source_ip(self):
        self._client = parse_ip(self._client)
        return self._client

    @property
    def remote_ip(self):
        # Without x-forwarded-for (or at the gateway) the remote client is the peer itself.
        self._remote = parse_ip(self._remote) if self._remote is not None else None
        return self._remote if self._remote is not None else self.source_ip

    @property
    def destination_ip(self):
        self._destination = parse_ip(self._destination)
        return self._destination

    def value(self, check: Check):
        attribute = check.attribute
        if attribute == "header":
            found = self.headers.getall(check.argument[0], None) if hasattr(self.headers, "getall") \
                else self.headers.get(check.argument[0])
            return ",".join(found) if isinstance(found, list) else found
        if attribute == "claim":
            value = self.claims
            for part in check.argument:  # nested claims: request.auth.claims[a][b]
                value = value.get(part) if isinstance(value, dict) else None
            return value
        return getattr(self, attribute)


_NAMESPACE = re.compile(r"/ns/([^/]+)/")


def namespace_of(principal: str | None) -> str | None:
    """'cluster.local/ns/shop/sa/web' -> 'shop' (Istio reads namespaces off the principal)."""
    found = _NAMESPACE.search(principal) if principal else None
    return found.group(1) if found else None


# --- the decision (pure) ----------------------------------------------------------------------

def _holds(check: Check, facts: RequestFacts) -> bool:
    return check.match(facts.value(check)) != check.negate


def _all_hold(checks, facts: RequestFacts) -> bool:
    for check in checks:
        if check.match(facts.value(check)) == check.negate:
            return False
    return True


def _any_holds(groups, facts: RequestFacts) -> bool:
    for checks in groups:
        if _all_hold(checks, facts):
            return True
    return False


def rule_matches(rule: Rule, facts: RequestFacts) -> bool:
    # Plain loops, not any()/all() over generators: this runs for every rule a request meets.
    return ((not rule.sources or _any_holds(rule.sources, facts))
            and (not rule.operations or _any_holds(rule.operations, facts))
            and _all_hold(rule.conditions, facts))


def first_match(policies, facts: RequestFacts) -> tuple[AuthorizationPolicy, int] | None:
    for policy in policies:
        for index, rule in enumerate(policy.rules):
            if rule_matches(rule, facts):
                return policy, index
    return None


def why_not(rule: Rule, facts: RequestFacts) -> str:
    """The first part of a rule that does not match, in the manifest's words."""
    def failing(checks, where):
        check = next((c for c in checks if not _holds(c, facts)), None)
        if check is None:
            return None
        return f"{where}{check.field} {check.match.patterns if hasattr(check.match, 'patterns') else ''}" \
               f" does not match {facts.value(check)!r}".replace("  ", " ")
    if rule.sources and not _any_holds(rule.sources, facts):
        return failing(rule.sources[0], "from[0].source.") or "from: no source matches"
    if rule.operations and not _any_holds(rule.operations, facts):
        return failing(rule.operations[0], "to[0].operation.") or "to: no operation matches"
    return failing(rule.conditions, "") or "matches"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str  # one line: which policy and rule decided, or why none did
    policy: str | None = None  # "namespace/name"
    rule: int | None = None
    audit: str | None = None  # the AUDIT policy and rule that matched, if any
    dry_run: str | None = None  # what dry-run policies would have done

    def record(self) -> dict:
        """The access log's and tap's `authz` field."""
        out = {"decision": "allow" if self.allowed else "deny", "reason": self.reason}
        if self.policy:
            out.update(policy=self.policy, rule=self.rule)
        if self.audit:
            out["audit"] = self.audit
        if self.dry_run:
            out["dry_run"] = self.dry_run
        return out


@dataclass(frozen=True)
class WorkloadPolicies:
    """The policies that apply to one workload, by action, in a fixed order (namespace, name)."""

    deny: tuple = ()
    allow: tuple = ()
    audit: tuple = ()
    dry_deny: tuple = ()
    dry_allow: tuple = ()
    names: tuple[str, ...] = field(default=())
    cache: DecisionCache = field(default_factory=lambda: DecisionCache([]), compare=False, repr=False)

    @property
    def empty(self) -> bool:
        return not self.names


def policies_for(resources, workload: Workload) -> WorkloadPolicies:
    chosen = sorted((r for r in resources if isinstance(r, AuthorizationPolicy) and applies(r, workload)),
                    key=lambda p: (p.namespace, p.name))
    def pick(action, dry):
        return tuple(p for p in chosen if p.action == action and p.dry_run == dry)
    return WorkloadPolicies(deny=pick("DENY", False), allow=pick("ALLOW", False),
                            audit=pick("AUDIT", False) + pick("AUDIT", True),
                            dry_deny=pick("DENY", True), dry_allow=pick("ALLOW", True),
                            names=tuple(p.ref for p in chosen), cache=DecisionCache(checks_of(chosen)))


def applies(policy: AuthorizationPolicy, workload: Workload) -> bool:
    if policy.namespace not in (workload.namespace, ROOT_NAMESPACE):
        return False
    return policy.selector is None or policy.selector.selects(workload.labels)


def decide(policies: WorkloadPolicies, facts: RequestFacts) -> Verdict:
    verdict = _enforced(policies.deny, policies.allow, facts)
    audit = first_match(policies.audit, facts)
    dry = None
    if policies.dry_deny or policies.dry_allow:
        shadow = _enforced(policies.dry_deny, policies.dry_allow, facts)
        dry = ("would allow: " if shadow.allowed else "would deny: ") + shadow.reason
    if audit is None and dry is None:
        return verdict
    return Verdict(verdict.allowed, verdict.reason, verdict.policy, verdict.rule,
                   f"{audit[0].ref} rules[{audit[1]}]" if audit else None, dry)


def _enforced(deny, allow, facts: RequestFacts) -> Verdict:
    hit = first_match(deny, facts)
    if hit is not None:
        policy, index = hit
        return Verdict(False, f"denied by DENY policy {policy.ref} rules[{index}]", policy.ref, index)
    if not allow:
        return Verdict(True, "allowed: no ALLOW policy applies to this workload")
    hit = first_match(allow, facts)
    if hit is not None:
        policy, index = hit
        return Verdict(True, f"allowed by ALLOW policy {policy.ref} rules[{index}]", policy.ref, index)
    misses = []
    for policy in allow:
        if not policy.rules:
            misses.append(f"{policy.ref} has no rules (allows nothing)")
        for index, rule in enumerate(policy.rules):
            misses.append(f"{policy.ref} rules[{index}]: {why_not(rule, facts)}")
    return Verdict(False, "denied: no ALLOW policy matched (" + "; ".join(misses) + ")")


# --- the layer (reads the request, raises on deny) ----------------------------------------------

def facts_of(request: Request, workload: Workload, path: str | None = None) -> RequestFacts:
    journey = request.journey
    remote = None
    if journey.direction == "inbound":
        # Istio's sidecar inbound trusts x-forwarded-for's last entry as the
        # client (Envoy with use_remote_address false); the gateway puts the
        # real client there. At the gateway itself the client is the peer.
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            remote = forwarded.rsplit(",", 1)[-1].strip()
    return RequestFacts(principal=principal_of(journey.peer_identity), source_ip=request.client, remote_ip=remote,
                        auth=journey.request_auth, host=request.authority, port=workload.port,
                        method=request.method, path=path if path is not None else request.path.split("?", 1)[0],
                        destination_ip=workload.ip, headers=request.headers)


def parse_ip(text):
    if not text:
        return None
    if not isinstance(text, str):
        return text  # parsed already
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        host = text.rsplit(":", 1)[0].strip("[]")  # "ip:port" or "[v6]:port"
        try:
            return ipaddress.ip_address(host)
        except ValueError:
            return None


def normalize_path(path: str) -> str:
    """Istio's default path normalization (BASE): RFC 3986 §5.2.4 dot segments, %-encoded unreserved decoded.

    Envoy does this before any filter, and sends the normalized path on, so
    that `/public/../admin` meets a policy on `/admin*` as `/admin` — and the
    app cannot be reached past it by a spelling the policy did not foresee.
    """
    raw, sep, query = path.partition("?")
    if "%" not in raw and "/." not in raw:
        return path
    if "%" in raw:
        raw = _UNRESERVED_ESCAPE.sub(_decode_unreserved, raw)
    out: list[str] = []
    for segment in raw.split("/")[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    normalized = "/" + "/".join(out)
    if raw.endswith(("/.", "/..")) and not normalized.endswith("/"):
        normalized += "/"
    return normalized + sep + query


_UNRESERVED_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _decode_unreserved(m: re.Match) -> str:
    char = chr(int(m.group(1), 16))
    return char if char.isalnum() and char.isascii() or char in "-._~" else "%" + m.group(1).upper()


class Authorize:
    """The layer: decide each request with the policies that apply to this workload in the current snapshot."""

    def __init__(self, inner, workload: Workload):
        self.inner = inner
        self.workload = workload
        self._seen: tuple[object, WorkloadPolicies] = (None, WorkloadPolicies())

    def policies(self, config) -> WorkloadPolicies:
        seen, policies = self._seen
        if config is not seen:  # once per snapshot, not per request
            policies = policies_for(getattr(config, "resources", ()), self.workload)
            self._seen = (config, policies)
        return policies

    def __call__(self, request: Request) -> Awaitable[Response]:
        normalized = normalize_path(request.path)
        if normalized is not request.path:
            request.path = normalized
        policies = self.policies(request.journey.config)
        if not policies.empty:
            path = normalized.split("?", 1)[0]
            cache = policies.cache
            key = cache.key(request, path)
            found = cache.get(key)
            if found is None:
                verdict = decide(policies, facts_of(request, self.workload, path))
                found = (verdict.allowed, verdict.reason, verdict.record())
                cache.put(key, found)
            allowed, reason, record = found
            request.journey.authz = record
            if not allowed:
                raise AccessDenied(reason)
        return self.inner(request)  # nothing to do on the way back: no frame of ours

