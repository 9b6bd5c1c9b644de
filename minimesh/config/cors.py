"""VirtualService `corsPolicy`: answer browsers' CORS preflights at the proxy.

Istio compiles it into Envoy's CORS filter. A preflight (OPTIONS with
`Origin` and `Access-Control-Request-Method`) from an allowed origin is
answered by the proxy itself — 200, with `Access-Control-Allow-Origin` set
to that origin, the allowed methods, headers, max age and credentials — and
never reaches the app. A preflight from an origin not allowed goes on to the
app untouched (Istio's default `unmatchedPreflights: FORWARD`). An actual
request from an allowed origin goes through, and its response gains
`Access-Control-Allow-Origin` (and `-Allow-Credentials`,
`-Expose-Headers`); from any other origin it gets no CORS headers, and the
browser blocks the answer. Origins match as `exact`, `prefix` or `regex`;
the deprecated `allowOrigin` list is exact strings; an entry that matches
`*` itself (`exact: "*"`) allows any origin, which Envoy then echoes back.
"""

from dataclasses import dataclass
from typing import Any

from .fields import At, boolean, check_fields, duration, enum, mapping, sequence, strings
from .match import StringMatch, parse_string_match


@dataclass(frozen=True)
class CorsPolicy:
    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None  # seconds
    allow_credentials: bool | None = None
    forward_unmatched_preflights: bool = True  # unmatchedPreflights: FORWARD (Istio's default) vs IGNORE

    def allows(self, origin: str) -> bool:
        # Envoy: an entry that matches "*" itself (exact "*", prefix "", regex ".*") allows any origin.
        return any(m.matches(origin) or m.matches("*") for m in self.allow_origins)


def parse_cors_policy(value: Any, at: At) -> CorsPolicy:
    block = mapping(value, at)
    check_fields(block, at, ("allowOrigins", "allowOrigin", "allowMethods", "allowHeaders", "exposeHeaders",
                             "maxAge", "allowCredentials", "unmatchedPreflights"))
    origins = [parse_string_match(m, at / "allowOrigins" / i)
               for i, m in enumerate(sequence(block.get("allowOrigins"), at / "allowOrigins"))]
    for i, text in enumerate(strings(block.get("allowOrigin"), at / "allowOrigin")):
        # Istio's deprecated list: exact origins, and "*" for any.
        origins.append(StringMatch("regex", ".*") if text == "*" else StringMatch("exact", text))
    if not origins:
        at.warn("no allowOrigins: as on Istio, no origin is allowed, so this corsPolicy answers no preflight")
    max_age = None
    if "maxAge" in block:
        max_age = int(duration(block["maxAge"], at / "maxAge"))
    unmatched = (enum(block["unmatchedPreflights"], at / "unmatchedPreflights",
                      ("UNSPECIFIED", "FORWARD", "IGNORE")) if "unmatchedPreflights" in block else "FORWARD")
    return CorsPolicy(
        allow_origins=tuple(origins),
        allow_methods=strings(block.get("allowMethods"), at / "allowMethods"),
        allow_headers=strings(block.get("allowHeaders"), at / "allowHeaders"),
        expose_headers=strings(block.get("exposeHeaders"), at / "exposeHeaders"),
        max_age=max_age,
        allow_credentials=(boolean(block["allowCredentials"], at / "allowCredentials")
                           if "allowCredentials" in block else None),
        forward_unmatched_preflights=unmatched != "IGNORE",
    )
