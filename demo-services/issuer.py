"""issuer: a toy identity provider for lesson 06 — it signs JSON Web Tokens and publishes its keys.

    GET /token?sub=alice          a token for `sub` (text/plain, ready for `Authorization: Bearer`)
    GET /.well-known/jwks.json    the public key set a RequestAuthentication's jwksUri points at

Its ES256 key pair is made when it starts and lives only in memory: nothing
secret is ever written down or committed, and a restarted issuer has a new
key, so tokens it signed before no longer verify (as after a real key
rotation). Tokens say `iss: http://issuer.default.svc.cluster.local`,
`aud: shop`, and expire after an hour.
"""

import json
import time
import uuid

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

import shop

ISSUER = "http://issuer.default.svc.cluster.local"
AUDIENCE = "shop"
LIFETIME_S = 3600
KEY = ec.generate_private_key(ec.SECP256R1())
KID = uuid.uuid4().hex[:12]
JWKS = {"keys": [{**json.loads(ECAlgorithm.to_jwk(KEY.public_key())), "kid": KID, "alg": "ES256", "use": "sig"}]}


async def token(request: web.Request) -> web.Response:
    sub = request.query.get("sub", "alice")
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + LIFETIME_S,
              "groups": request.query.getall("group", ["shoppers"])}
    return web.Response(text=jwt.encode(claims, KEY, algorithm="ES256", headers={"kid": KID}) + "\n")


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(JWKS)


if __name__ == "__main__":
    shop.run(shop.create_app("issuer", [web.get("/token", token), web.get("/.well-known/jwks.json", jwks)],
                             unfaulted=("/.well-known/jwks.json",)))
