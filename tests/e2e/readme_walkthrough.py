"""A lesson README's compose-mode walkthrough: the commands a reader types, and the output promised.

The convention (lessons/README.md, "Compose mode"): a command block fenced as

    ```sh compose

works the same against the lesson's Docker Compose stack, and a learner in
compose mode types it; other ```sh blocks are for the local stack only. An
output block (a plain ``` fence) right after a compose block is what the
README promises it prints. `blocks()` reads them in order; `promise_problems()`
compares a promise with what the commands really printed, loosely: every
number and hex id may differ (counts, ports, latencies, serials), and lines holding "…" or
in parentheses are commentary. Pure: tests/e2e/test_compose_walkthrough.py
runs the blocks, tests/unit/test_readme_walkthrough.py checks the READMEs'
shape and this module without Docker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The lessons whose READMEs the compose e2e walks (test_compose_walkthrough.py); the other lessons'
# compose stacks get only the per-step checks (test_compose_stacks.py).
WALKED = ("01-hello-mesh", "02-retries", "03-canary", "04-mtls", "05-tracing")

_BLOCK = re.compile(r"^```sh compose\n(?P<code>.*?)^```\n(?:```\n(?P<out>.*?)^```\n)?", re.S | re.M)
_NUMBER = re.compile(r"[0-9a-f]{8,}|\d+(?:\.\d+)?")  # a number, or an id in hex (serial, trace id)
_UP = re.compile(r"docker compose -p (?P<project>\S+) -f (?P<file>compose/\S+\.yaml) up -d")


@dataclass(frozen=True)
class Block:
    line: int  # where the block's fence is in the README (1-based)
    code: str
    promised: str | None  # the output block after it, if any


def blocks(readme: str) -> list[Block]:
    return [Block(readme.count("\n", 0, m.start()) + 1, m["code"], m["out"]) for m in _BLOCK.finditer(readme)]


def compose_up(readme: str) -> tuple[str, str] | None:
    """(project, compose file) of the README's `docker compose ... up -d`, if a compose block has one."""
    for b in blocks(readme):
        m = _UP.search(b.code)
        if m:
            return m["project"], m["file"]
    return None


def _pattern(line: str) -> re.Pattern:
    parts = _NUMBER.split(line)
    return re.compile(r"[0-9a-f.]+".join(re.escape(p) for p in parts))


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def promise_problems(promised: str, printed: str) -> list[str]:
    """Promised lines that no printed line matches (numbers aside); [] when the promise holds."""
    lines = [_squeeze(line) for line in printed.splitlines()]
    problems = []
    for want in promised.splitlines():
        want = _squeeze(want)
        if not want or "…" in want or "..." in want or want.startswith("("):
            continue
        pattern = _pattern(want)
        if not any(pattern.fullmatch(line) for line in lines):
            problems.append(want)
    return problems
