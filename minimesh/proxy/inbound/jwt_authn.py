"""RequestAuthentication in the data plane: verify the request's JWT, if it has one.

Like Envoy's jwt_authn filter as Istio configures it:

- the token is looked for where the policies' jwtRules say (by default the
  `Authorization: Bearer …` header and the `access_token` query parameter);
- no token: the request passes, with no request principal — requiring one
  is an AuthorizationPolicy's job (`requestPrincipals: ["*"]`);
- a token: its issuer picks the rule; it must be signed by one of that
  rule's keys (RS, PS, ES, HS and EdDSA, as Envoy), be within its
  `exp`/`nbf` (60 s of clock skew, Envoy's default), and name one of the
  rule's audiences when it lists any. Anything else is 401 with Envoy's words;
- a verified token gives the request principal `ISS/SUB` and its claims to
  authz.py, and is removed unless `forwardOriginalToken` (from headers; Envoy
  leaves a query parameter in place). `outputPayloadToHeader` and
  `outputClaimToHeaders` hand the payload or claims on to the app; copies of
  those headers that the client sent are always removed, so the app can
  trust them.

Keys from `jwksUri` are fetched by the proxy over HTTP(S) (jwks.py), cached
and refreshed. The clock is injected.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from minimesh.config import RequestAuthentication, short_host
from minimesh.config.requestauthentication import JwtRule
from minimesh.errors import JwtRejected
from minimesh.proxy.inbound.authz import Workload, applies
from minimesh.proxy.message import Request, Response

if TYPE_CHECKING:
    import jwt

# Envoy's list. A key only verifies the algorithm of its own type (an RSA public key is
# never taken as an HMAC secret: PyJWT refuses it, and the next key is tried).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "HS256", "HS384", "HS512", "EdDSA")
CLOCK_SKEW_S = 60  # Envoy's clock_skew_seconds default

# Envoy's answers (jwt_authn's Status strings), so logs read the same as on Istio.
MALFORMED = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
UNKNOWN_ISSUER = "Jwt issuer is not configured"
BAD_SIGNATURE = "Jwt verification fails"
EXPIRED = "Jwt is expired"
NOT_YET_VALID = "Jwt not yet valid"
BAD_AUDIENCE = "Audiences in Jwt are not allowed"
NO_KEYS = "Jwks remote fetch is failed"


@dataclass(frozen=True)
class RequestAuth:
    """What a verified token says: request.auth.* for authorization."""

    principal: str  # "ISS/SUB"
    audiences: tuple[str, ...]
    presenter: str | None  # the azp claim
    claims: dict  # for `when`: scope and permission (and spaceDelimitedClaims) split into lists
    raw_claims: dict  # as signed, for outputClaimToHeaders


@dataclass(frozen=True)
class FoundToken:
    token: str
    header: str | None  # the header it came in (removed after verifying unless forwarded)


def rules_for(resources, workload: Workload) -> tuple[JwtRule, ...]:
    """Every jwtRule of the RequestAuthentications that apply to the workload (Istio merges them)."""
    policies = sorted((r for r in resources if isinstance(r, RequestAuthentication) and applies(r, workload)),
                      key=lambda p: (p.namespace, p.name))
    return tuple(rule for p in policies for rule in p.jwt_rules)


def find_token(request: Request, rules: tuple[JwtRule, ...]) -> FoundToken | None:
    """The first token found in any location a rule names, or None."""
    headers = request.headers
    for rule in rules:
        for name, prefix in rule.from_headers:
            value = headers.get(name)
            if value is not None and value.startswith(prefix) and value[len(prefix):].strip():
                return FoundToken(value[len(prefix):].strip(), name)
    query = None
    for rule in rules:
        if rule.from_params:
            if query is None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
            for param in rule.from_params:
                if query.get(param):
                    return FoundToken(query[param][0], None)
        for cookie in rule.from_cookies:
            value = _cookie(headers.get("cookie", ""), cookie)
            if value:
                return FoundToken(value, None)
    return None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def unverified_issuer(token: str) -> str:
    import jwt  # PyJWT loads `cryptography` (~10 MB): only in a proxy that meets a token

    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.DecodeError as e:
        raise JwtRejected(MALFORMED) from e
    if header.get("alg") not in ALGORITHMS:
        raise JwtRejected(BAD_SIGNATURE)
    issuer = payload.get("iss")
    if not isinstance(issuer, str):
        raise JwtRejected(UNKNOWN_ISSUER)
    return issuer


def verify(token: str, rule: JwtRule, keys: jwt.PyJWKSet, now: float) -> RequestAuth:
    """Check the token's signature, time and audience against one rule; RequestAuth or JwtRejected."""
    import jwt

    header = jwt.get_unverified_header(token)
    kid = header.get("kid")
    candidates = [k for k in keys.keys if kid is None or k.key_id in (None, kid)]
    claims = None
    for key in candidates:
        try:
            claims = jwt.decode(token, key.key, algorithms=[header["alg"]], issuer=rule.issuer,
                                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                         "verify_aud": False})
            break
        except jwt.InvalidIssuerError as e:
            raise JwtRejected(UNKNOWN_ISSUER) from e
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError, TypeError, ValueError):
            continue
        except jwt.InvalidTokenError as e:
            raise JwtRejected(BAD_SIGNATURE) from e
    if claims is None:
        raise JwtRejected(BAD_SIGNATURE)
    if _number(claims.get("exp")) is not None and now > claims["exp"] + CLOCK_SKEW_S:
        raise JwtRejected(EXPIRED)
    if _number(claims.get("nbf")) is not None and now < claims["nbf"] - CLOCK_SKEW_S:
        raise JwtRejected(NOT_YET_VALID)
    aud = claims.get("aud")
    audiences = tuple(aud) if isinstance(aud, list) else ((aud,) if isinstance(aud, str) else ())
    if rule.audiences and not set(audiences) & set(rule.audiences):
        raise JwtRejected(BAD_AUDIENCE)
    shown = {k: (v.split() if k in rule.space_delimited_claims and isinstance(v, str) else v)
             for k, v in claims.items()}
    presenter = claims.get("azp") if isinstance(claims.get("azp"), str) else None
    return RequestAuth(f"{claims['iss']}/{claims.get('sub', '')}", audiences, presenter, shown, claims)


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def hand_on(request: Request, rule: JwtRule, found: FoundToken, auth: RequestAuth) -> None:
    """After a successful verification: drop the token unless forwarded; add the output headers."""
    headers = request.headers
    if found.header is not None and not rule.forward_original_token:
        headers.popall(found.header, None)
    if rule.output_payload_to_header:
        payload = found.token.split(".")[1]
        headers[rule.output_payload_to_header] = payload  # base64url, as Envoy's forward_payload_header
    for header, claim in rule.output_claim_to_headers:
        # Envoy copies string, number and boolean claims; a list or object is left out.
        value = auth.raw_claims.get(claim)
        if isinstance(value, bool):
            headers[header] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            headers[header] = str(value)


def payload_json(header_value: str) -> dict:
    """Read an outputPayloadToHeader value back (for the app, or a test)."""
    padded = header_value + "=" * (-len(header_value) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def mesh_resolver(config):
    """host -> the inbound address of one endpoint of the mesh service it names (jwks.py), else None."""
    def resolve(host: str) -> str | None:
        if config is None or not hasattr(config, "is_service") or not config.is_service(host):
            return None
        cluster = config.cluster(short_host(host), None)
        return cluster.endpoints[0].address if cluster and cluster.endpoints else None
    return resolve


class Authenticate:
    """The layer: verify the request's JWT against the rules that apply to this workload."""

    def __init__(self, inner, workload: Workload, jwks, clock: Callable[[], float] = time.time):
        self.inner = inner
        self.workload = workload
        self.jwks = jwks  # jwks.py's JwksCache: keys for a jwksUri
        self.clock = clock
        self._seen: tuple[object, tuple] = (None, ())

    def rules(self, config) -> tuple[JwtRule, ...]:
        seen, rules = self._seen
        if config is not seen:  # once per snapshot
            rules = rules_for(getattr(config, "resources", ()), self.workload)
            self._seen = (config, rules)
            self.jwks.prefetch((rule.jwks_uri for rule in rules if rule.jwks_uri), resolve=mesh_resolver(config))
        return rules

    def __call__(self, request: Request) -> Awaitable[Response]:
        rules = self.rules(request.journey.config)
        if not rules:
            return self.inner(request)  # no RequestAuthentication: the next layer's awaitable, no frame of ours
        return self._authenticated(request, rules)

    async def _authenticated(self, request: Request, rules: tuple[JwtRule, ...]) -> Response:
        await self.authenticate(request, rules)
        return await self.inner(request)

    async def authenticate(self, request: Request, rules: tuple[JwtRule, ...]) -> None:
        for rule in rules:  # what the app reads as verified must come from us, never from the client
            for header in ((rule.output_payload_to_header,) if rule.output_payload_to_header else ()) + \
                    tuple(h for h, _ in rule.output_claim_to_headers):
                request.headers.popall(header, None)
        found = find_token(request, rules)
        if found is None:
            return
        issuer = unverified_issuer(found.token)
        rule = next((r for r in rules if r.issuer == issuer), None)
        if rule is None:
            raise JwtRejected(UNKNOWN_ISSUER)
        keys = rule.jwks if rule.jwks is not None else \
            await self.jwks.keys(rule.jwks_uri, rule.timeout, mesh_resolver(request.journey.config))
        if keys is None:
            raise JwtRejected(NO_KEYS)
        auth = verify(found.token, rule, keys, self.clock())
        request.journey.request_auth = auth
        hand_on(request, rule, found, auth)
