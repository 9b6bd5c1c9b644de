"""VirtualService `rewrite`: change the path or the Host before the request goes upstream.

Istio compiles `rewrite.uri` into Envoy's `prefix_rewrite`, which swaps the
part of the path the route's match *matched* for the new value, and keeps
the rest and the query string: with `match: uri: prefix: /shop` and
`rewrite: uri: /`, `/shop/items?x=1` goes upstream as `//items?x=1` —
and with an exact match the whole path is swapped. A route with no uri
match is matched by Istio with prefix `/`, so `rewrite: uri: /v2` turns
`/items` into `/v2items`, which surprises many; it is kept and warned
about. `uriRegexRewrite` (Envoy's `regex_rewrite`) replaces every match of
an RE2 regex in the path (not the query) with a replacement that may name
groups as `\\1`. `authority` replaces the Host header the upstream sees;
routing has already happened by then.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from .fields import At, check_fields, mapping, regex, require, string


@dataclass(frozen=True)
class HTTPRewrite:
    uri: str | None = None
    authority: str | None = None
    uri_regex: str | None = None  # uriRegexRewrite.match
    uri_regex_replacement: str = ""  # uriRegexRewrite.rewrite, `\1`-style groups
    pattern: re.Pattern | None = field(default=None, compare=False, repr=False, hash=False)


_GROUP = re.compile(r"\\(\d+)")


def parse_rewrite(value: Any, at: At, has_uri_match: bool) -> HTTPRewrite:
    block = mapping(value, at)
    check_fields(block, at, ("uri", "authority", "uriRegexRewrite"))
    if "uri" in block and "uriRegexRewrite" in block:
        raise (at / "uriRegexRewrite").error("set 'uri' or 'uriRegexRewrite', not both (Istio refuses both)")
    uri = string(block["uri"], at / "uri") if "uri" in block else None
    if uri is not None and not has_uri_match:
        at.warn(f"rewrite.uri {uri!r} on a route without a uri match: as on Istio (Envoy's prefix_rewrite of "
                f"the implied prefix '/'), '/items' becomes {uri + 'items'!r}; add `match: [uri: {{prefix: /}}]` "
                "and end the rewrite with '/' if that is not what you want")
    authority = string(block["authority"], at / "authority") if "authority" in block else None
    if authority is not None and not authority:
        raise (at / "authority").error("an empty authority would leave the request without a Host")
    if "uriRegexRewrite" not in block:
        return HTTPRewrite(uri=uri, authority=authority)
    where = at / "uriRegexRewrite"
    rr = mapping(block["uriRegexRewrite"], where)
    check_fields(rr, where, ("match", "rewrite"))
    source = string(require(rr, "match", where), where / "match")
    replacement = string(require(rr, "rewrite", where), where / "rewrite")
    pattern = regex(source, where / "match")
    for number in _GROUP.findall(replacement):
        if int(number) > pattern.groups:
            raise (where / "rewrite").error(f"\\{number} names a group the regex {source!r} does not have "
                                            f"(it has {pattern.groups})")
    return HTTPRewrite(uri=None, authority=authority, uri_regex=source, uri_regex_replacement=replacement,
                       pattern=pattern)
