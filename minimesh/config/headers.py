"""VirtualService `headers`: set, add or remove request and response headers.

Istio compiles a route's `headers` into Envoy's `request_headers_to_add` /
`request_headers_to_remove` (and the response twins) on the route, and a
destination's `headers` into the same lists on its weighted cluster.
`set` overwrites a header, `add` appends one more value, `remove` drops it.
Envoy applies the destination's operations first and the route's after, so
where both `set` one header the route's value is the one sent.

Host is Istio's exception (route.go TranslateHeadersOperations): a request
`set` or `add` of `Host` or `:authority` is not a header operation but an
authority rewrite, Envoy's `host_rewrite_literal` — exactly `rewrite.authority`
(`set` wins over `add`). A route's lands on its `rewrite` (virtualservice.py);
a destination's applies when the route rewrites no authority (header_ops.py),
as Envoy lets the route's rewrite run last. Istio's validation refuses the
rest, and so do we: the authority given twice (set and add, Host and
:authority, or beside `rewrite.authority`), `remove: [host]`, Host in the
response, any other pseudo-header — and the hop-by-hop headers a proxy owns.
"""

from dataclasses import dataclass, replace
from typing import Any

from .fields import At, check_fields, mapping, sequence, string
from .rewrite import HTTPRewrite

_PROTECTED = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "upgrade", "te",
                        "proxy-connection", "content-length"})


@dataclass(frozen=True)
class HeaderOperations:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()  # lowercased
    authority: str | None = None  # request set/add of Host or :authority: Istio's authority rewrite

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove or self.authority)


@dataclass(frozen=True)
class Headers:
    request: HeaderOperations = HeaderOperations()
    response: HeaderOperations = HeaderOperations()


def parse_headers(value: Any, at: At) -> Headers:
    block = mapping(value, at)
    check_fields(block, at, ("request", "response"))
    return Headers(
        request=_operations(block.get("request"), at / "request", request=True),
        response=_operations(block.get("response"), at / "response", request=False),
    )


def _operations(value: Any, at: At, request: bool) -> HeaderOperations:
    block = mapping(value, at)
    check_fields(block, at, ("set", "add", "remove"))
    pairs = {}
    authority: tuple[str, At] | None = None
    for op in ("set", "add"):
        kept = []
        for name, val in mapping(block.get(op), at / op).items():
            where = at / op / name
            val = string(val, where)
            if request and name.lower() in AUTHORITY_NAMES:
                if authority is not None:
                    raise where.error(f"the authority is already set to {authority[0]!r} at {authority[1].field}; "
                                      "Istio refuses setting it twice (set and add, or Host and :authority)")
                if not val:
                    raise where.error("an empty authority would leave the request without a Host")
                authority = (val, where)
                continue
            kept.append((_name(name, where), val))
        pairs[op] = tuple(kept)
    remove = tuple(_name(string(n, at / "remove" / i), at / "remove" / i)
                   for i, n in enumerate(sequence(block.get("remove"), at / "remove")))
    return HeaderOperations(pairs["set"], pairs["add"], remove, authority[0] if authority else None)


AUTHORITY_NAMES = ("host", ":authority")


def _name(name: str, at: At) -> str:
    lowered = name.lower()
    if lowered in AUTHORITY_NAMES:  # remove, or in the response: Istio's validation refuses both
        raise at.error(f"header {name!r} cannot be changed here: Istio refuses Host outside a request's "
                       "set/add (where it rewrites the authority, as rewrite.authority does)")
    if not lowered or lowered.startswith(":") or lowered in _PROTECTED:
        raise at.error(f"header {name!r} cannot be changed here: Istio refuses pseudo-headers, and minimesh "
                       "the hop-by-hop headers a proxy owns, in header operations")
    if any(c in lowered for c in " \t\r\n:"):
        raise at.error(f"header name {name!r} is not a valid HTTP field name")
    return lowered


def route_authority(rewrite: HTTPRewrite | None, headers: Headers | None, at: At,
                    answered_locally: bool) -> tuple[HTTPRewrite | None, Headers | None]:
    """A route's (rewrite, headers) with a request set/add of Host moved onto the rewrite, as Istio does.

    Istio's route gets one host_rewrite_literal: rewrite.authority or the headers' Host, and its
    validation refuses both. A redirect or directResponse has no upstream: Istio drops it there.
    """
    authority = headers.request.authority if headers is not None else None
    if authority is None:
        return rewrite, headers
    if rewrite is not None and rewrite.authority is not None:
        raise (at / "rewrite" / "authority").error(
            f"the authority is rewritten twice, here and by headers.request's Host ({authority!r}); "
            "Istio refuses both: keep one")
    request = replace(headers.request, authority=None)
    headers = replace(headers, request=request) if request or headers.response else None
    if answered_locally:
        (at / "headers" / "request").warn(f"the Host {authority!r} set here is ignored: this route is answered "
                                          "by the proxy (redirect or directResponse), as on Istio")
        return rewrite, headers
    return (replace(rewrite, authority=authority) if rewrite is not None else HTTPRewrite(authority=authority)), headers
