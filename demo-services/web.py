"""web: the shop's front. `GET /` (HTML page), `GET /api/products`, `POST /api/checkout`.

web calls the other services by name — http://catalog, http://pricing,
http://payments — and lets its sidecar do the rest. It never retries: retries
are the mesh's job, and a lesson shows them.

When an upstream fails, web answers 502 Bad Gateway, never 503: the failure
was its upstream's, and 502 says so. (Istio's default retry policy no longer
retries a 503 since 1.24, but a route whose `retryOn` names `5xx` or 503
would; passing an upstream's 503 on would make the gateway quietly retry the
whole page and hide the very failure a lesson wants you to see.)
"""

import html
import os
import uuid

from aiohttp import web

import shop


def what_failed(failed: shop.Answer) -> str:
    why = failed.error or failed.body.get("error") or f"answered {failed.status}"
    return f"{failed.service} failed: {why}"


def upstream_failed(request: web.Request, failed: shop.Answer, answers: list) -> web.Response:
    return shop.reply(request, {"error": what_failed(failed), "upstream_status": failed.status,
                                "upstreams": [a.who() for a in answers]}, status=502)


# Lesson 05's planted latency bug: PRICING_CALLS=per-item makes web ask pricing
# once per item, one call after another, instead of once for all of them. Each
# call is quick, so metrics show nothing wrong; only a trace's waterfall shows
# the staircase. Default: batch (one call).
PRICING_CALLS = os.environ.get("PRICING_CALLS", "batch").strip().lower()


async def fetch_prices(request: web.Request, items: list) -> tuple[dict, shop.Answer]:
    """(prices by id, the pricing answer that decides success: the failed one, else the last)."""
    if PRICING_CALLS != "per-item":
        answer = await shop.call(request, "pricing", "GET", "/prices",
                                 params={"ids": ",".join(item["id"] for item in items)})
        return answer.body.get("prices", {}), answer
    prices, answer = {}, None
    for item in items:  # the bug: N sequential round trips where one would do
        answer = await shop.call(request, "pricing", "GET", "/prices", params={"ids": item["id"]})
        if not answer.ok:
            return {}, answer
        prices.update(answer.body.get("prices", {}))
    return prices, answer


async def gather_products(request: web.Request) -> tuple[list, list, shop.Answer | None]:
    """(products, answers, the failed answer or None): catalog first, then pricing for its ids."""
    catalog = await shop.call(request, "catalog", "GET", "/items")
    if not catalog.ok:
        return [], [catalog], catalog
    items = catalog.body.get("items", [])
    prices, pricing = await fetch_prices(request, items)
    if pricing is None:  # no items, nothing to price
        return [], [catalog], None
    if not pricing.ok:
        return [], [catalog, pricing], pricing
    products = [{"id": i["id"], "name": i["name"], "price": prices.get(i["id"])} for i in items]
    return products, [catalog, pricing], None


async def api_products(request: web.Request) -> web.Response:
    products, answers, failed = await gather_products(request)
    if failed:
        return upstream_failed(request, failed, answers)
    return shop.reply(request, {"products": products, "upstreams": [a.who() for a in answers]})


async def api_checkout(request: web.Request) -> web.Response:
    body = await shop.read_json(request, required=False)
    order = {"order_id": body.get("order_id") or str(uuid.uuid4()), "amount": body.get("amount", 19.99)}
    payment = await shop.call(request, "payments", "POST", "/pay", json=order)
    if not payment.ok:
        return upstream_failed(request, payment, [payment])
    return shop.reply(request, {"status": "ok", "order_id": order["order_id"], "items": body.get("items", []),
                                "payment": payment.body, "upstreams": [payment.who()]})


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Toy shop</title></head>
<body style="font-family: sans-serif">
<h1>Toy shop</h1>
{content}
<p><small>Served by {served}</small></p>
</body></html>
"""


def served_by(who: dict) -> str:
    return html.escape(f"{who['service']} {who.get('version') or '?'} ({who.get('instance') or '?'})")


async def page(request: web.Request) -> web.Response:
    products, answers, failed = await gather_products(request)
    if failed:
        content = f"<p><b>Sorry:</b> {html.escape(what_failed(failed))}</p>"
    else:
        rows = "".join(f"<tr><td>{html.escape(p['name'])}</td><td>{p['price']} EUR</td></tr>" for p in products)
        content = f"<table>{rows}</table>"
    served = ", ".join([served_by(request.app[shop.IDENTITY].as_dict())] + [served_by(a.who()) for a in answers])
    return web.Response(text=PAGE.format(content=content, served=served), content_type="text/html",
                        status=502 if failed else 200)


if __name__ == "__main__":
    shop.run(shop.create_app("web", [
        web.get("/", page),
        web.get("/api/products", api_products),
        web.post("/api/checkout", api_checkout),
    ]))
