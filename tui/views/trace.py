"""Trace: the waterfall of the selected request's trace.

One line per span, indented under its parent, with a bar placed on a shared
time axis: where the time went, which hop retried (attempt spans under a
client span), which span failed (red). The trace is the selected tap line's,
or else the slowest recent one.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.feed import status_class

KIND_MARK = {"gateway": "⇢", "client": "→", "server": "⇥", "attempt": "↻"}
STYLE = {"good": "green", "warn": "yellow", "bad": "red"}


def ordered(spans) -> list[tuple[int, object]]:
    """Depth-first, children by start time: (depth, span)."""
    ids = {s.span_id for s in spans}
    children: dict = {}
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    out = []

    def walk(parent, depth):
        for s in sorted(children.get(parent, []), key=lambda s: s.start):
            out.append((depth, s))
            walk(s.span_id, depth + 1)
    walk(None, 0)
    return out


def waterfall(trace, width: int = 100) -> Text:
    text = Text()
    if trace is None or not trace.spans:
        text.append("no trace selected: pick a request in the tap view (4) and press w", style="grey50")
        return text
    text.append(f"trace {trace.trace_id}  {trace.duration_ms:.1f} ms  {len(trace.spans)} spans\n\n", style="bold")
    label_w = 44
    bar_w = max(20, width - label_w - 20)
    total = max(trace.duration_ms, 0.001)
    for depth, s in ordered(trace.spans):
        label = f"{'  ' * depth}{KIND_MARK.get(s.kind, '·')} {s.service} {s.name}"
        if s.kind in ("client", "gateway") and s.peer.service:
            label += f" → {s.peer.service}"
        if s.kind == "attempt" and s.peer.instance:
            label = f"{'  ' * depth}{KIND_MARK['attempt']} {s.name} → {s.peer.instance}"
        offset = (s.start - trace.start) * 1000
        left = int(offset / total * bar_w)
        length = max(1, int(s.duration_ms / total * bar_w))
        left = min(left, bar_w - 1)
        length = min(length, bar_w - left)
        style = STYLE[status_class(s.status)]
        text.append(f"{label[:label_w]:<{label_w}} ")
        text.append(" " * left + "█" * length + " " * (bar_w - left - length), style=style)
        flags = f" {','.join(s.flags)}" if s.flags else ""
        text.append(f" {s.status} {s.duration_ms:7.1f}ms{flags}\n", style=style if s.flags else "")
    return text


class TraceView(VerticalScroll):
    def compose(self):
        yield Static("", id="trace-head", classes="head")
        yield Static("", id="trace-body")

    def draw(self, app) -> None:
        trace = app.state.traces.get(app.trace_id) if app.trace_id else None
        self.query_one("#trace-head", Static).update(
            "Trace — the selected request's journey (⇢ gateway, → client, ⇥ server, ↻ attempt)")
        self.query_one("#trace-body", Static).update(waterfall(trace, self.size.width or 100))
