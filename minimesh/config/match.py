"""Which requests a VirtualService route applies to: Istio's HTTPMatchRequest.

The semantics are Envoy's, because that is what Istio compiles a match into:
- `uri.exact` and `uri.regex` look at the path *without* its query string;
  `uri.prefix` looks at the whole path, query included (Envoy's `prefix`
  route match works on the raw :path);
- a regex must match the whole string (Envoy's `safe_regex` is a full match,
  RE2 syntax), not just somewhere inside it;
- header names are case-insensitive, values are not;
- `authority` is HTTP/1.1's Host header (HTTP/2's :authority), port included
  when the client sent one;
- every condition in one match must hold (AND); a route's list of matches
  is OR; an empty match matches everything.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .fields import At, check_fields, mapping, regex, string

STRING_MATCH_KINDS = ("exact", "prefix", "regex")


@dataclass(frozen=True)
class StringMatch:
    kind: str  # "exact" | "prefix" | "regex"
    value: str
    # Compiled once at load time; never per request.
    pattern: re.Pattern | None = field(default=None, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.kind == "regex" and self.pattern is None:
            object.__setattr__(self, "pattern", re.compile(self.value))

    def matches(self, s: str) -> bool:
        if self.kind == "exact":
            return s == self.value
        if self.kind == "prefix":
            return s.startswith(self.value)
        return self.pattern.fullmatch(s) is not None


@dataclass(frozen=True)
class HTTPMatchRequest:
    uri: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()  # names lowercased
    method: StringMatch | None = None
    name: str | None = None
    authority: StringMatch | None = None

    def matches(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        if self.method is not None and not self.method.matches(method):
            return False
        if self.authority is not None and not self.authority.matches(_header(headers, "host") or ""):
            return False
        if self.uri is not None:
            subject = path if self.uri.kind == "prefix" else path.split("?", 1)[0]
            if not self.uri.matches(subject):
                return False
        for name, want in self.headers:
            value = _header(headers, name)
            if value is None or not want.matches(value):
                return False
        return True


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # A CIMultiDict answers case-insensitively by itself; a plain dict may not.
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


def parse_string_match(value: Any, at: At) -> StringMatch:
    block = mapping(value, at)
    check_fields(block, at, STRING_MATCH_KINDS)
    if len(block) != 1:
        raise at.error("set exactly one of exact, prefix or regex")
    (kind, raw), = block.items()
    text = string(raw, at / kind)
    pattern = regex(text, at / kind) if kind == "regex" else None
    return StringMatch(kind, text, pattern)


_MATCH_FIELDS = ("name", "uri", "headers", "method", "authority")
_MATCH_ISTIO_ONLY = (
    "gateways", "ignoreUriCase", "port", "queryParams", "scheme",
    "sourceLabels", "sourceNamespace", "statPrefix", "withoutHeaders",
)


def parse_match(value: Any, at: At) -> HTTPMatchRequest:
    block = mapping(value, at)
    check_fields(block, at, _MATCH_FIELDS, _MATCH_ISTIO_ONLY)
    uri = parse_string_match(block["uri"], at / "uri") if "uri" in block else None
    method = parse_string_match(block["method"], at / "method") if "method" in block else None
    headers = tuple(
        (name.lower(), parse_string_match(match, at / "headers" / name))
        for name, match in mapping(block.get("headers"), at / "headers").items()
    )
    name = string(block["name"], at / "name") if "name" in block else None
    authority = parse_string_match(block["authority"], at / "authority") if "authority" in block else None
    return HTTPMatchRequest(uri=uri, headers=headers, method=method, name=name, authority=authority)
