"""The request attributes an AuthorizationPolicy can test, and Istio's ways of matching them.

Istio compares strings in one way everywhere a policy names them (principals,
namespaces, hosts, methods, paths, request principals, header and claim
values): a pattern is an exact value, `prefix*`, `*suffix`, or `*` — which
matches any value that is present, and nothing when the value is absent (a
plaintext peer has no principal, so even `principals: ["*"]` does not match
it). A `*` anywhere else is an ordinary character. IP blocks are addresses or
CIDR ranges; ports are numbers.

Every matcher here is compiled once, when the manifest is loaded, into sets
and tuples the proxy can test with a hash lookup or one `startswith` call:
the policy layer sits on every inbound request, so no pattern is parsed there.

The `when` keys minimesh evaluates are the table `CONDITION_KEYS`; each names
the kind of its values (string, ip, port), which decides how they are checked
at load time and matched at run time.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .fields import At


class StringMatch:
    """Istio's string match over a list of patterns; matches a value when any pattern does."""

    __slots__ = ("exact", "prefixes", "suffixes", "present", "empty_ok", "fold", "patterns")

    def __init__(self, patterns: tuple[str, ...], fold: bool = False, empty_ok: bool = False):
        self.patterns = patterns
        self.fold = fold  # hosts are compared case-insensitively, as Istio does
        # "*" is Envoy's regex ".+" (a value must be there and not empty), except for
        # a header, where it is a presence match.
        self.empty_ok = empty_ok
        norm = [p.lower() for p in patterns] if fold else list(patterns)
        self.present = "*" in norm
        # Istio's order (pilot/pkg/security/authz/matcher): "*" first, then a leading
        # "*" (suffix), then a trailing one (prefix); "*abc*" is the suffix "abc*".
        self.suffixes = tuple(p[1:] for p in norm if p.startswith("*") and p != "*")
        self.prefixes = tuple(p[:-1] for p in norm if p.endswith("*") and not p.startswith("*"))
        self.exact = frozenset(p for p in norm if not p.startswith("*") and not p.endswith("*"))

    def __call__(self, value) -> bool:
        if value is None:
            return False
        if isinstance(value, (list, tuple)):  # a list claim or the audiences: any element
            return any(self(v) for v in value)
        if not isinstance(value, str):
            value = _claim_text(value)
        if self.present and (value or self.empty_ok):
            return True
        if self.fold:
            value = value.lower()
        return (value in self.exact or (bool(self.prefixes) and value.startswith(self.prefixes))
                or (bool(self.suffixes) and value.endswith(self.suffixes)))


class IpMatch:
    """Addresses and CIDR blocks ("10.0.0.0/8", "127.0.0.1"); matches an address inside any."""

    __slots__ = ("ranges", "patterns")

    def __init__(self, patterns: tuple[str, ...], at: At):
        self.patterns = patterns
        # As (IP version, first address, last address) integers: a membership test is two comparisons.
        self.ranges = tuple((n.version, int(n.network_address), int(n.broadcast_address))
                            for n in (ip_block(p, at / i) for i, p in enumerate(patterns)))

    def __call__(self, value) -> bool:
        if value is None:
            return False
        version, number = value.version, int(value)
        for v, first, last in self.ranges:
            if v == version and first <= number <= last:
                return True
        return False


class PortMatch:
    __slots__ = ("ports", "patterns")

    def __init__(self, patterns: tuple[str, ...], at: At):
        self.patterns = patterns
        self.ports = frozenset(port_number(p, at / i) for i, p in enumerate(patterns))

    def __call__(self, value) -> bool:
        return value in self.ports


def ip_block(text: str, at: At) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise at.error(f"{text!r} is not an IP address or CIDR block (like 10.0.0.0/8)") from e


def port_number(text: str, at: At) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise at.error(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _claim_text(value) -> str:
    # Envoy compares a boolean or numeric claim by its JSON text.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- `when` keys ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConditionKey:
    """A parsed `when[].key`: the attribute it reads and the kind of values it takes."""

    attribute: str  # "request.headers", "source.ip", "request.auth.claims", ...
    kind: str  # "string", "ip" or "port"
    argument: tuple[str, ...] = ()  # the header name, or the claim's path (nested claims: several)


CONDITION_KEYS = {  # Istio's condition keys for HTTP, as its "Authorization Policy Conditions" page lists them
    "request.headers": "string",
    "source.ip": "ip",
    "remote.ip": "ip",
    "source.namespace": "string",
    "source.principal": "string",
    "request.auth.principal": "string",
    "request.auth.audiences": "string",
    "request.auth.presenter": "string",
    "request.auth.claims": "string",
    "destination.ip": "ip",
    "destination.port": "port",
}
_WITH_ARGUMENT = ("request.headers", "request.auth.claims")
_BRACKETS = re.compile(r"\[([^\[\]]+)\]")

REFUSED_KEYS = {
    "connection.sni": "minimesh's sidecars do not send SNI to each other (Envoy sends "
                      "outbound_.PORT_._.HOST), so a connection.sni condition could never be honoured",
    "source.serviceAccount": "minimesh does not implement it; use source.principal "
                             "(cluster.local/ns/NAMESPACE/sa/ACCOUNT), which Istio also accepts",
}


def parse_condition_key(text: str, at: At) -> ConditionKey:
    """'request.headers[x-user]' -> ConditionKey('request.headers', 'string', ('x-user',))."""
    base, _, rest = text.partition("[")
    if text in REFUSED_KEYS:
        raise at.error(f"condition key '{text}' is not supported: {REFUSED_KEYS[text]}")
    if text.startswith("experimental."):
        raise at.error(f"condition key '{text}' is not supported: Istio passes experimental keys to Envoy's "
                       "filter metadata, which minimesh does not have")
    if base not in CONDITION_KEYS:
        raise at.error(f"unknown condition key '{text}'; Istio's keys are: {', '.join(sorted(CONDITION_KEYS))} "
                       "(request.headers[NAME] and request.auth.claims[NAME] take a name in brackets)")
    if base not in _WITH_ARGUMENT:
        if rest:
            raise at.error(f"condition key '{base}' takes no [...] part")
        return ConditionKey(base, CONDITION_KEYS[base])
    brackets = "[" + rest
    parts = tuple(_BRACKETS.findall(brackets))
    if not parts or "".join(f"[{p}]" for p in parts) != brackets:
        raise at.error(f"'{text}' needs a name in brackets, like {base}[x-user]")
    if base == "request.headers" and len(parts) != 1:
        raise at.error(f"'{text}' names one header, like request.headers[x-user]")
    return ConditionKey(base, "string", tuple(p.lower() for p in parts) if base == "request.headers" else parts)


def values_matcher(key: ConditionKey, values: tuple[str, ...], at: At):
    """The compiled matcher for a condition's values, checking each value now."""
    if key.kind == "ip":
        return IpMatch(values, at)
    if key.kind == "port":
        return PortMatch(values, at)
    return StringMatch(values, empty_ok=key.attribute == "request.headers")
