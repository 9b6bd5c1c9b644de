"""payments: charges an order. `POST /pay` {"order_id", "amount"}; `GET /charges` to audit.

Paying is not idempotent: every successful /pay records one more charge, even
for an order that was already paid. The fault knobs run first (the delay, then
the dice), so a request can be slow *and then* charge — a client that gave up
waiting and retried causes a double charge. That is the break-it exercise of
the retries lesson: `GET /charges` lists the orders charged more than once.
(aiohttp does not cancel a handler whose client went away; see shop.run.)
"""

import collections
import uuid

from aiohttp import web

import shop

charges: collections.Counter = collections.Counter()  # order_id -> times charged (in memory)


async def pay(request: web.Request) -> web.Response:
    body = await shop.read_json(request)
    order_id, amount = body.get("order_id"), body.get("amount")
    if not isinstance(order_id, str) or not order_id:
        raise shop.bad_request(request, "order_id must be a non-empty string")
    if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount < 0:
        raise shop.bad_request(request, "amount must be a number >= 0")
    charges[order_id] += 1
    charge_id = f"ch_{uuid.uuid4().hex[:12]}"
    return shop.reply(request, {"status": "paid", "order_id": order_id, "amount": amount, "charge_id": charge_id})


async def list_charges(request: web.Request) -> web.Response:
    duplicates = sorted(order for order, n in charges.items() if n > 1)
    return shop.reply(request, {"charges": sum(charges.values()), "orders": dict(charges), "duplicates": duplicates})


if __name__ == "__main__":
    # /charges is the auditor's view, not shop traffic: the fault knobs leave it alone.
    app = shop.create_app("payments", [web.post("/pay", pay), web.get("/charges", list_charges)],
                          unfaulted=("/charges",))
    shop.run(app)
