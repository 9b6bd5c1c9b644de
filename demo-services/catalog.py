"""catalog: the shop's list of toys. `GET /items` — a leaf service that calls no one."""

from aiohttp import web

import shop

ITEMS = [
    {"id": "p1", "name": "Wooden train"},
    {"id": "p2", "name": "Kite"},
    {"id": "p3", "name": "Yo-yo"},
    {"id": "p4", "name": "Spinning top"},
    {"id": "p5", "name": "Rubber duck"},
]


async def items(request: web.Request) -> web.Response:
    return shop.reply(request, {"items": ITEMS})


if __name__ == "__main__":
    shop.run(shop.create_app("catalog", [web.get("/items", items)]))
