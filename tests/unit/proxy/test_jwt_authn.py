"""RequestAuthentication's pure parts: where a token is found, what a verified one yields, time and audience."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from multidict import CIMultiDict

from minimesh.config import load_manifests
from minimesh.errors import JwtRejected
from minimesh.proxy.inbound.jwt_authn import CLOCK_SKEW_S, find_token, hand_on, verify
from minimesh.proxy.message import Request

KEY = ec.generate_private_key(ec.SECP256R1())
JWKS = json.dumps({"keys": [{**json.loads(ECAlgorithm.to_jwk(KEY.public_key())), "kid": "k1"}]})
NOW = 1_800_000_000


def rule(extra: str = ""):
    (policy,) = load_manifests(f"""\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: r}}
spec:
  jwtRules:
  - issuer: https://issuer
    jwks: '{JWKS}'
{extra}""")
    return policy.jwt_rules[0]


def token(**claims) -> str:
    return jwt.encode({"iss": "https://issuer", "sub": "alice", **claims}, KEY, algorithm="ES256",
                      headers={"kid": "k1"})


def request(path="/", **headers) -> Request:
    return Request("GET", path, "shop", CIMultiDict(headers))


@pytest.mark.parametrize("extra, req, found", [
    ("", request(authorization="Bearer abc.def.ghi"), "abc.def.ghi"),  # Istio's defaults: the header...
    ("", request("/x?access_token=abc.def.ghi"), "abc.def.ghi"),  # ...and the access_token parameter
    ("", request(authorization="Basic dXNlcg=="), None),  # another scheme is no token at all
    ("    fromHeaders: [{name: x-jwt}]\n", request(**{"x-jwt": "t.o.k"}), "t.o.k"),
    ("    fromHeaders: [{name: x-jwt}]\n", request(authorization="Bearer abc.def.ghi"), None),  # only where told
    ("    fromParams: [jwt]\n", request("/x?jwt=t.o.k&access_token=no"), "t.o.k"),
    ("    fromCookies: [session]\n", request(cookie="a=1; session=t.o.k; b=2"), "t.o.k"),
])
def test_where_a_token_is_found(extra, req, found):
    got = find_token(req, (rule(extra),))
    assert (got.token if got else None) == found


def test_a_verified_token_gives_principal_audiences_presenter_and_claims():
    r = rule("    spaceDelimitedClaims: [roles]\n")
    auth = verify(token(aud=["shop", "x"], azp="web-app", scope="read write", roles="a b", exp=NOW + 60), r,
                  r.jwks, NOW)
    assert auth.principal == "https://issuer/alice" and auth.audiences == ("shop", "x")
    assert auth.presenter == "web-app"
    assert auth.claims["scope"] == ["read", "write"] and auth.claims["roles"] == ["a", "b"]  # split for `when`
    assert auth.raw_claims["scope"] == "read write"  # as signed, for outputClaimToHeaders


@pytest.mark.parametrize("claims, words", [
    ({"exp": NOW - CLOCK_SKEW_S - 1}, "Jwt is expired"),
    ({"nbf": NOW + CLOCK_SKEW_S + 1}, "Jwt not yet valid"),
    ({"aud": "other"}, "Audiences in Jwt are not allowed"),
    ({}, "Audiences in Jwt are not allowed"),  # audiences listed, none in the token
])
def test_time_and_audience(claims, words):
    r = rule("    audiences: [shop]\n")
    with pytest.raises(JwtRejected) as caught:
        verify(token(**claims), r, r.jwks, NOW)
    assert caught.value.body == words
    # Within the clock skew it passes.
    verify(token(aud="shop", exp=NOW - CLOCK_SKEW_S + 1), r, r.jwks, NOW)


def test_hand_on_drops_the_token_unless_forwarded_and_copies_claims():
    r = rule("    outputClaimToHeaders: [{header: x-sub, claim: sub}, {header: x-admin, claim: admin},"
             " {header: x-groups, claim: groups}]\n    outputPayloadToHeader: x-payload\n")
    t = token(admin=True, groups=["a"])
    req = request(authorization=f"Bearer {t}")
    found = find_token(req, (r,))
    hand_on(req, r, found, verify(t, r, r.jwks, NOW))
    assert "authorization" not in req.headers
    assert req.headers["x-sub"] == "alice" and req.headers["x-admin"] == "true"
    assert "x-groups" not in req.headers  # a list claim is not copied (Envoy copies scalars)
    assert req.headers["x-payload"] == t.split(".")[1]
