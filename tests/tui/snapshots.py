"""Snapshot tests' tooling: Textual's own SVG screenshots, compared with committed ones.

`assert_snapshot(svg, name)` compares a screenshot (App.export_screenshot)
with tests/tui/snapshots/<name>.svg after a normaliser that drops what may
change without the picture changing: Textual's generated CSS class ids and
the title. On a difference it writes <name>.new.svg beside it and fails.
`MINIMESH_UPDATE_SNAPSHOTS=1` rewrites the committed snapshots and the copies
in docs/screenshots/ that the README and lessons link to.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

HERE = Path(__file__).parent / "snapshots"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SIZE = (132, 38)


def normalise(svg: str) -> str:
    svg = re.sub(r"terminal-[0-9]+", "terminal", svg)
    svg = re.sub(r"<title>.*?</title>", "<title/>", svg, flags=re.S)
    return svg


def text_of(svg: str) -> str:
    """The visible characters, a line per row: what a failing test prints."""
    rows = re.findall(r'<text class="[^"]*" x="[^"]*" y="([0-9.]+)"[^>]*>(.*?)</text>', svg)
    lines: dict[str, list[str]] = {}
    for y, chunk in rows:
        lines.setdefault(y, []).append(chunk.replace("&#160;", " ").replace("&amp;", "&").replace("&lt;", "<")
                                       .replace("&gt;", ">"))
    return "\n".join("".join(parts).rstrip() for _, parts in sorted(lines.items(), key=lambda kv: float(kv[0])))


def assert_snapshot(svg: str, name: str) -> None:
    committed = HERE / f"{name}.svg"
    fresh = HERE / f"{name}.new.svg"
    if os.environ.get("MINIMESH_UPDATE_SNAPSHOTS") == "1" or not committed.exists():
        HERE.mkdir(parents=True, exist_ok=True)
        committed.write_text(svg)
        DOCS.mkdir(parents=True, exist_ok=True)
        (DOCS / f"{name}.svg").write_text(svg)
        fresh.unlink(missing_ok=True)
        if os.environ.get("MINIMESH_UPDATE_SNAPSHOTS") != "1":
            raise AssertionError(f"no snapshot {committed.name} yet: wrote it; look at it and run again")
        return
    if normalise(committed.read_text()) == normalise(svg):
        fresh.unlink(missing_ok=True)
        return
    fresh.write_text(svg)
    diff = "\n".join(difflib.unified_diff(text_of(committed.read_text()).splitlines(), text_of(svg).splitlines(),
                                          "committed", "now", lineterm="", n=1))
    raise AssertionError(f"{name} looks different from {committed} (new picture: {fresh}; "
                         f"MINIMESH_UPDATE_SNAPSHOTS=1 accepts it). Text diff:\n{diff or '(colours or layout only)'}")
