"""pricing: what each toy costs. `GET /prices?ids=p1,p2` (no ids: every price).

v2 is the canary of the canary lesson: it gives 10 % off, so which version
answered is visible in every price.

With RATES_HOST set (the egress lesson: rates.example.com), pricing also asks
that exchange-rate API outside the mesh for the dollar rate and adds
`prices_usd`; when the API fails, so does pricing (502, naming it).
"""

import asyncio
import os
import random
import zlib

from aiohttp import web

import shop

PRICES_V1 = {"p1": 24.0, "p2": 12.5, "p3": 3.9, "p4": 6.5, "p5": 4.2}
VERSION = os.environ.get("VERSION", "v1")
DISCOUNT = 0.10 if VERSION == "v2" else 0.0

# --- the planted bug -----------------------------------------------------------
# The canary lesson ships a v2 with a bug that only some requests hit — those
# asking for item p3 — so that a small canary weight shows a small error rate.
# Off unless the lesson sets it:
#   PRICING_BUG=1 (or "error"): a request that includes p3 answers 503
#   PRICING_BUG=slow:           a request that includes p3 takes 300 ms longer
#   PRICING_BUG_SHARE=0.5:      ... but only half of them (default: all), on
#                               seeded dice, so a run tells the same story each time
RATES_HOST = os.environ.get("RATES_HOST", "").strip()  # lesson 08: an API outside the mesh
PRICING_BUG = os.environ.get("PRICING_BUG", "").strip().lower()
BUG_SHARE = float(os.environ.get("PRICING_BUG_SHARE", "1"))
BUGGY_ITEM = "p3"
_bug_dice = random.Random(f"bug:{os.environ.get('SEED') or zlib.crc32(os.environ.get('INSTANCE', '').encode())}")


def hits_the_bug(wanted: list[str]) -> bool:
    return BUGGY_ITEM in wanted and PRICING_BUG in ("1", "error", "slow") and _bug_dice.random() < BUG_SHARE


async def prices(request: web.Request) -> web.Response:
    wanted = [i for i in request.query.get("ids", "").split(",") if i] or list(PRICES_V1)
    if hits_the_bug(wanted):
        if PRICING_BUG == "slow":
            await asyncio.sleep(0.3)
        else:
            return shop.reply(request, {"error": f"pricing bug: cannot price {BUGGY_ITEM}"}, status=503)
    found = {i: round(PRICES_V1[i] * (1 - DISCOUNT), 2) for i in wanted if i in PRICES_V1}
    unknown = [i for i in wanted if i not in PRICES_V1]
    answer = {"prices": found, "currency": "EUR", "unknown": unknown}
    if RATES_HOST:
        rates = await shop.call(request, RATES_HOST, "GET", "/rates")
        if not rates.ok:
            return shop.reply(request, {"error": f"{RATES_HOST} answered {rates.status}: {rates.error or ''}".strip(),
                                        "upstreams": [rates.who()]}, status=502)
        usd = rates.body.get("rates", {}).get("USD", 1.0)
        answer |= {"prices_usd": {i: round(p * usd, 2) for i, p in found.items()}, "upstreams": [rates.who()]}
    return shop.reply(request, answer)


if __name__ == "__main__":
    shop.run(shop.create_app("pricing", [web.get("/prices", prices)]))
