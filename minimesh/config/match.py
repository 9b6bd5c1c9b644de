"""Which requests a VirtualService route applies to: Istio's HTTPMatchRequest.

The semantics are Envoy's, because that is what Istio compiles a match into:
- `uri.exact` and `uri.regex` look at the path *without* its query string;
  `uri.prefix` looks at the whole path, query included (Envoy's `prefix`
  route match works on the raw :path);
- a regex must match the whole string (Envoy's `safe_regex` is a full match,
  RE2 syntax), not just somewhere inside it;
- header names are case-insensitive, values are not;
- every condition in one match must hold (AND); a route's list of matches
  is OR; an empty match matches everything;
- a header given as `{}` (or Istio's special `regex: "*"`) only has to be
  present; `withoutHeaders` is the opposite of `headers`, with Envoy's twist
  that a header *absent* does not match an inverted value match (only
  `{}` there means "absent") — istio/istio#50988, kept and warned about;
- `queryParams` compare the raw (undecoded) value of the first parameter of
  that name; `ignoreUriCase` makes `uri` exact/prefix case-insensitive (not
  regex, as in Envoy);
- `authority` matches the Host header (HTTP/1.1's :authority) as sent,
  port included;
- `sourceLabels` must all be on the calling workload (the proxy's own
  labels); `port` is the port the request was addressed to (the Host's
  port, 80 when it names none).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from .fields import At, boolean, check_fields, integer, labels, mapping, regex, string

STRING_MATCH_KINDS = ("exact", "prefix", "regex")
PRESENT = "present"  # a header match of `{}`: the header has to be there, any value


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
        if self.kind == PRESENT:
            return True
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
    ignore_uri_case: bool = False
    query_params: tuple[tuple[str, StringMatch], ...] = ()
    without_headers: tuple[tuple[str, StringMatch], ...] = ()  # names lowercased
    source_labels: tuple[tuple[str, str], ...] = ()
    port: int | None = None
    authority: StringMatch | None = None

    def matches(self, method: str, path: str, headers: Mapping[str, str],
                source_labels: Mapping[str, str] | None = None, port: int | None = None) -> bool:
        if self.method is not None and not self.method.matches(method):
            return False
        if self.uri is not None and not self._uri_matches(path):
            return False
        if self.authority is not None:
            host = _header(headers, "host")
            if host is None or not self.authority.matches(host):
                return False
        for name, want in self.headers:
            value = _header(headers, name)
            if value is None or not want.matches(value):
                return False
        for name, unwanted in self.without_headers:
            value = _header(headers, name)
            # Envoy's invert_match: an absent header matches only an inverted presence match.
            if (value is None) != (unwanted.kind == PRESENT) or (value is not None and unwanted.matches(value)):
                return False
        if self.query_params and not self._query_matches(path):
            return False
        if self.source_labels and not all((source_labels or {}).get(k) == v for k, v in self.source_labels):
            return False
        return self.port is None or self.port == port

    def _uri_matches(self, path: str) -> bool:
        subject = path if self.uri.kind == "prefix" else path.split("?", 1)[0]
        if self.ignore_uri_case and self.uri.kind != "regex":
            return StringMatch(self.uri.kind, self.uri.value.lower()).matches(subject.lower())
        return self.uri.matches(subject)

    def _query_matches(self, path: str) -> bool:
        query = path.split("?", 1)[1] if "?" in path else ""
        first: dict[str, str] = {}
        for part in query.split("&"):
            if part:
                key, _, value = part.partition("=")
                first.setdefault(key, value)
        return all(name in first and want.matches(first[name]) for name, want in self.query_params)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # A CIMultiDict (a request's headers) answers case-insensitively by itself; a plain dict may not.
    value = headers.get(name)
    if value is not None or isinstance(headers, (CIMultiDict, CIMultiDictProxy)):
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


def parse_string_match(value: Any, at: At, presence: bool = False) -> StringMatch:
    """exact / prefix / regex; with `presence` (header matches), `{}` and Istio's `regex: "*"` mean "present"."""
    block = mapping(value, at)
    check_fields(block, at, STRING_MATCH_KINDS)
    if presence and (not block or block == {"regex": "*"}):
        return StringMatch(PRESENT, "")
    if len(block) != 1:
        raise at.error("set exactly one of exact, prefix or regex")
    (kind, raw), = block.items()
    text = string(raw, at / kind)
    pattern = regex(text, at / kind) if kind == "regex" else None
    return StringMatch(kind, text, pattern)


_MATCH_FIELDS = ("name", "uri", "headers", "method", "ignoreUriCase", "queryParams", "withoutHeaders",
                 "sourceLabels", "port", "authority")
_MATCH_ISTIO_ONLY = {
    "gateways": "Istio would apply this match only to traffic through the named gateways",
    "scheme": "Istio would match the request's scheme (http or https)",
    "sourceNamespace": "Istio would match only callers in that namespace",
    "statPrefix": "Istio would prefix this route's Envoy statistics with it",
}


def parse_match(value: Any, at: At) -> HTTPMatchRequest:
    block = mapping(value, at)
    check_fields(block, at, _MATCH_FIELDS, _MATCH_ISTIO_ONLY)
    uri = parse_string_match(block["uri"], at / "uri") if "uri" in block else None
    method = parse_string_match(block["method"], at / "method") if "method" in block else None
    headers = tuple(
        (name.lower(), parse_string_match(match, at / "headers" / name, presence=True))
        for name, match in mapping(block.get("headers"), at / "headers").items()
    )
    name = string(block["name"], at / "name") if "name" in block else None
    without = tuple(
        (name_.lower(), parse_string_match(match, at / "withoutHeaders" / name_, presence=True))
        for name_, match in mapping(block.get("withoutHeaders"), at / "withoutHeaders").items()
    )
    if any(m.kind != PRESENT for _, m in without):
        (at / "withoutHeaders").warn("as on Istio (Envoy's inverted header match), a request *without* this "
                                     "header does not match; only `{}` matches an absent header "
                                     "(istio/istio#50988)")
    query = tuple(
        (key, _query_match(match, at / "queryParams" / key))
        for key, match in mapping(block.get("queryParams"), at / "queryParams").items()
    )
    return HTTPMatchRequest(
        uri=uri, headers=headers, method=method, name=name,
        ignore_uri_case=boolean(block["ignoreUriCase"], at / "ignoreUriCase") if "ignoreUriCase" in block else False,
        query_params=query,
        without_headers=without,
        source_labels=tuple(sorted(labels(block.get("sourceLabels"), at / "sourceLabels").items())),
        port=integer(block["port"], at / "port", 1, 65535) if "port" in block else None,
        authority=parse_string_match(block["authority"], at / "authority") if "authority" in block else None,
    )


def _query_match(value: Any, at: At) -> StringMatch:
    if mapping(value, at) == {}:
        raise at.error("give exact, prefix or regex (exact: \"\" matches '?key' with no value)")
    return parse_string_match(value, at)
