"""rates: an exchange-rate API *outside* the mesh. `GET /rates` — euro rates for a few currencies.

The egress lesson (08) runs it with no sidecar, under a DNS name of its own
(rates.example.com), and lets pricing call it: an external dependency the
mesh did not write, cannot put a sidecar beside, and still has to treat well
(timeouts, retries) — or keep out (REGISTRY_ONLY). Its fault knobs
(FAILURE_RATE, DELAY_MS) make it as unreliable as the lesson needs.
"""

from aiohttp import web

import shop

RATES = {"EUR": 1.0, "USD": 1.08, "GBP": 0.85, "CHF": 0.94}


async def rates(request: web.Request) -> web.Response:
    return shop.reply(request, {"base": "EUR", "rates": RATES})


if __name__ == "__main__":
    shop.run(shop.create_app("rates", [web.get("/rates", rates)]))
