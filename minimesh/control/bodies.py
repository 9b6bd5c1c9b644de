"""Reading a JSON request body the control plane can afford to read.

Three limits, each checked before the next step costs anything:

1. size: the access middleware refuses a declared Content-Length over 1 MiB
   with 413 before reading; aiohttp's `client_max_size` stops an undeclared
   (chunked) body at the same size while it arrives;
2. nesting: `[[[[…]]]]` a hundred thousand deep is small, but Python's JSON
   parser recurses once per level — so the depth is measured first, with
   one regular-expression pass that never recurses, and over MAX_DEPTH is a 400;
3. shape: the body must be a JSON object.

A body that fails any of them becomes one line in a 400 (or 413), never a
traceback, and leaves nothing behind: the control plane's memory after a
hundred refused bodies is what it was before (tests/security/).
"""

from __future__ import annotations

import json
import re

from aiohttp import web

MAX_DEPTH = 32  # the deepest body minimesh sends (a snapshot's VirtualService match) is under 12

# A JSON string (skipped whole, brackets inside it do not count) or one bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class BadBody(Exception):
    """A request body or parameter the API cannot use; becomes 400."""


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (a string's brackets do not count)."""
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif c in "]}":
            depth -= 1
    return deepest


def parse_json_object(raw: bytes, max_depth: int = MAX_DEPTH) -> dict:
    """`raw` as a JSON object, or BadBody with the reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadBody(f"request body is not UTF-8: {e}") from e
    depth = nesting_depth(text)
    if depth > max_depth:
        raise BadBody(f"request body nests {depth} levels deep; the limit is {max_depth}")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadBody(f"request body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise BadBody("request body must be a JSON object")
    return body


async def read_json(request: web.Request) -> dict:
    """The request's body as a JSON object; over the size limit aiohttp raises 413 while reading."""
    return parse_json_object(await request.read())
