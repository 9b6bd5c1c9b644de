"""VirtualService `headers`: set, add or remove request and response headers.

Istio compiles a route's `headers` into Envoy's `request_headers_to_add` /
`request_headers_to_remove` (and the response twins) on the route, and a
destination's `headers` into the same lists on its weighted cluster.
`set` overwrites a header, `add` appends one more value, `remove` drops it.
Envoy applies the destination's operations first and the route's after, so
where both `set` one header the route's value is the one sent.

Pseudo-headers and Host cannot be changed this way (Envoy refuses
`:authority`; Istio points at `rewrite.authority` instead), nor the
hop-by-hop headers a proxy owns.
"""

from dataclasses import dataclass
from typing import Any

from .fields import At, check_fields, mapping, sequence, string

_PROTECTED = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "upgrade", "te",
                        "proxy-connection", "content-length"})


@dataclass(frozen=True)
class HeaderOperations:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()  # lowercased

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True)
class Headers:
    request: HeaderOperations = HeaderOperations()
    response: HeaderOperations = HeaderOperations()


def parse_headers(value: Any, at: At) -> Headers:
    block = mapping(value, at)
    check_fields(block, at, ("request", "response"))
    return Headers(
        request=_operations(block.get("request"), at / "request"),
        response=_operations(block.get("response"), at / "response"),
    )


def _operations(value: Any, at: At) -> HeaderOperations:
    block = mapping(value, at)
    check_fields(block, at, ("set", "add", "remove"))
    pairs = {}
    for op in ("set", "add"):
        pairs[op] = tuple((_name(name, at / op / name), string(val, at / op / name))
                          for name, val in mapping(block.get(op), at / op).items())
    remove = tuple(_name(string(n, at / "remove" / i), at / "remove" / i)
                   for i, n in enumerate(sequence(block.get("remove"), at / "remove")))
    return HeaderOperations(pairs["set"], pairs["add"], remove)


def _name(name: str, at: At) -> str:
    lowered = name.lower()
    if not lowered or lowered.startswith(":") or lowered in _PROTECTED:
        fix = " (use rewrite.authority to change the Host)" if lowered in ("host", ":authority") else ""
        raise at.error(f"header {name!r} cannot be changed here: Envoy refuses pseudo-headers, Host and "
                       f"hop-by-hop headers in header operations{fix}")
    if any(c in lowered for c in " \t\r\n:"):
        raise at.error(f"header name {name!r} is not a valid HTTP field name")
    return lowered
