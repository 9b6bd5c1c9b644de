"""RequestAuthentication: which JSON Web Tokens a workload verifies, and where it finds them.

Each of the policy's `jwtRules` names an issuer, the keys its tokens are
signed with (inline `jwks`, or a `jwksUri` the proxy fetches and refreshes),
the audiences it accepts, where the token travels (by default the
`Authorization: Bearer` header and the `access_token` query parameter), and
what the proxy hands on after verifying it (the original token, the payload,
chosen claims as headers). Istio's rule, which surprises many: a request
*without* a token passes (it simply has no request principal); a request
with a bad token gets 401. Requiring a token is the job of an
AuthorizationPolicy with `requestPrincipals`. Verification is in
minimesh/proxy/inbound/jwt_authn.py.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .fields import At, check_fields, duration, mapping, require, sequence, string, strings
from .resource import Labels, Resource
from .security import parse_selector

if TYPE_CHECKING:
    import jwt

DEFAULT_HEADER = ("authorization", "Bearer ")
DEFAULT_PARAM = "access_token"
DEFAULT_SPACE_DELIMITED = ("scope", "permission")  # Istio splits these claims on spaces for matching
DEFAULT_JWKS_TIMEOUT = 5.0


@dataclass(frozen=True)
class JwtRule:
    issuer: str
    audiences: tuple[str, ...] = ()
    jwks_uri: str | None = None
    jwks: Any = field(default=None, compare=False, hash=False, repr=False)  # jwt.PyJWKSet, inline keys
    from_headers: tuple[tuple[str, str], ...] = (DEFAULT_HEADER,)  # (lower-case name, prefix to strip)
    from_params: tuple[str, ...] = (DEFAULT_PARAM,)
    from_cookies: tuple[str, ...] = ()
    forward_original_token: bool = False
    output_payload_to_header: str | None = None
    output_claim_to_headers: tuple[tuple[str, str], ...] = ()  # (header, claim)
    space_delimited_claims: tuple[str, ...] = DEFAULT_SPACE_DELIMITED
    timeout: float = DEFAULT_JWKS_TIMEOUT  # for fetching jwksUri


@dataclass(frozen=True, kw_only=True)
class RequestAuthentication(Resource):
    kind = "RequestAuthentication"
    selector: Labels | None = None
    jwt_rules: tuple[JwtRule, ...] = ()


_RULE_FIELDS = ("issuer", "audiences", "jwks", "jwksUri", "jwks_uri", "fromHeaders", "fromParams", "fromCookies",
                "forwardOriginalToken", "outputPayloadToHeader", "outputClaimToHeaders", "spaceDelimitedClaims",
                "timeout")


def parse_request_authentication(spec: dict, at: At, **meta) -> RequestAuthentication:
    for ref in ("targetRef", "targetRefs"):
        if ref in spec:
            raise (at / ref).error(
                f"'{ref}' is not supported: on Istio it attaches the policy to a Gateway API Gateway or a "
                "waypoint (ambient mode), which minimesh has none of; use selector.matchLabels instead")
    check_fields(spec, at, ("selector", "jwtRules"))
    rules = tuple(_parse_rule(r, at / "jwtRules" / i) for i, r in enumerate(sequence(spec.get("jwtRules"), at / "jwtRules")))
    issuers = [r.issuer for r in rules]
    for i, issuer in enumerate(issuers):
        if issuer in issuers[:i]:
            raise (at / "jwtRules" / i / "issuer").error(f"issuer {issuer!r} appears twice; keep one rule per issuer")
    return RequestAuthentication(selector=parse_selector(spec, at), jwt_rules=rules, **meta)


def _parse_rule(value: Any, at: At) -> JwtRule:
    block = mapping(value, at)
    check_fields(block, at, _RULE_FIELDS)
    issuer = string(require(block, "issuer", at), at / "issuer")
    if "jwksUri" in block and "jwks_uri" in block:
        raise (at / "jwks_uri").error("give jwksUri or its deprecated spelling jwks_uri, not both")
    uri_key = "jwksUri" if "jwksUri" in block else "jwks_uri"
    uri = _jwks_uri(block[uri_key], at / uri_key) if uri_key in block else None
    keys = _jwks(block["jwks"], at / "jwks") if "jwks" in block else None
    if uri is None and keys is None:
        raise at.error("give jwksUri or jwks: Istio would look the key set up through the issuer's "
                       "/.well-known/openid-configuration, which minimesh does not do")
    headers = tuple(_from_header(h, at / "fromHeaders" / i) for i, h in enumerate(sequence(block.get("fromHeaders"), at / "fromHeaders")))
    params = strings(block.get("fromParams"), at / "fromParams")
    cookies = strings(block.get("fromCookies"), at / "fromCookies")
    if not (headers or params or cookies):
        headers, params = (DEFAULT_HEADER,), (DEFAULT_PARAM,)  # Istio's defaults, only when none is given
    claims = tuple(_claim_to_header(c, at / "outputClaimToHeaders" / i)
                   for i, c in enumerate(sequence(block.get("outputClaimToHeaders"), at / "outputClaimToHeaders")))
    payload_header = string(block["outputPayloadToHeader"], at / "outputPayloadToHeader") \
        if "outputPayloadToHeader" in block else None
    forward = block.get("forwardOriginalToken", False)
    if not isinstance(forward, bool):
        raise (at / "forwardOriginalToken").error("expected true or false")
    return JwtRule(
        issuer=issuer, audiences=strings(block.get("audiences"), at / "audiences"), jwks_uri=uri, jwks=keys,
        from_headers=headers, from_params=params, from_cookies=cookies, forward_original_token=forward,
        output_payload_to_header=payload_header.lower() if payload_header else None,
        output_claim_to_headers=claims,
        space_delimited_claims=DEFAULT_SPACE_DELIMITED + strings(block.get("spaceDelimitedClaims"),
                                                                  at / "spaceDelimitedClaims"),
        timeout=duration(block["timeout"], at / "timeout") if "timeout" in block else DEFAULT_JWKS_TIMEOUT,
    )


def _jwks_uri(value: Any, at: At) -> str:
    text = string(value, at)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise at.error(f"{text!r} is not an http(s) URL with a host")
    return text


def parse_jwks(text: str) -> jwt.PyJWKSet:
    """A JSON Web Key Set as PyJWT reads it; ValueError says what is wrong."""
    import jwt  # here, not at the top: PyJWT loads `cryptography` (~10 MB), which only key sets need

    try:
        keys = jwt.PyJWKSet.from_dict(json.loads(text))
    except (ValueError, TypeError, jwt.PyJWKSetError, jwt.InvalidKeyError) as e:
        raise ValueError(f"not a usable JSON Web Key Set: {e}") from e
    return keys


def _jwks(value: Any, at: At) -> jwt.PyJWKSet:
    try:
        return parse_jwks(string(value, at))
    except ValueError as e:
        raise at.error(str(e)) from e


def _from_header(value: Any, at: At) -> tuple[str, str]:
    block = mapping(value, at)
    check_fields(block, at, ("name", "prefix"))
    name = string(require(block, "name", at), at / "name")
    prefix = string(block.get("prefix", ""), at / "prefix")
    return name.lower(), prefix


def _claim_to_header(value: Any, at: At) -> tuple[str, str]:
    block = mapping(value, at)
    check_fields(block, at, ("header", "claim"))
    header = string(require(block, "header", at), at / "header")
    if not header.replace("-", "").replace("_", "").isalnum():
        raise (at / "header").error(f"{header!r} is not a valid header name")
    return header.lower(), string(require(block, "claim", at), at / "claim")
