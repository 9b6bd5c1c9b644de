"""Tap: the live request stream, newest first, and the selected request explained.

`/` filters by service and status class (`/payments 5xx`) — the control
plane does the filtering, so a filtered tap costs nothing extra. Space
pauses. When lines come faster than the view draws them, it shows an even
sample and says "sampling 1 in k". Selecting a line (arrows) explains it
below: route, subset, endpoint, attempts, flags, peer (tui/explain.py).
Outlier detection's decisions are lines too: EJECTED (red) when a caller's
sidecar takes an instance out of its balancer, RETURNED (green) when it lets
it back — never sampled away, however fast the requests come.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui.explain import explain
from tui.feed import status_class
from tui.views.table import LiveTable, cell

COLUMNS = ("TIME", "FROM", "TO", "METHOD", "PATH", "STATUS", "MS", "FLAGS", "TRIES", "mTLS", "SEEN BY")
SEEN_BY = {"gateway": "gateway", "outbound": "caller", "inbound": "callee"}


def tap_time(ts: float, localtime=time.localtime) -> str:
    return time.strftime("%H:%M:%S", localtime(ts)) + f".{int((ts % 1) * 1000):03d}"


def rows(events, localtime=time.localtime) -> list[tuple[str, tuple]]:
    out = []
    for e in reversed(events):
        if e.kind == "outlier":  # the caller's sidecar ejected the instance, or let it back (outlier.py)
            colour = "bad" if e.event == "ejected" else "good"
            out.append((str(e.seq), (
                cell(tap_time(e.ts, localtime), "idle"), cell(e.source.label()),
                cell(f"{e.destination.label()} ({e.destination.instance or '?'})"),
                cell((e.event or "").upper(), colour), cell(e.note or "", colour), cell("-", None, "right"),
                cell("-", None, "right"), cell("-"), cell("-", None, "right"), cell("·"),
                cell(SEEN_BY.get(e.reporter, e.reporter), "idle"),
            )))
            continue
        colour = status_class(e.status)
        out.append((str(e.seq), (
            cell(tap_time(e.ts, localtime), "idle"), cell(e.source.label()), cell(e.destination.label()),
            cell(e.method or ""), cell((e.path or "")[:32]), cell(str(e.status), colour, "right"),
            cell(f"{e.duration_ms:.1f}", None, "right"), cell(",".join(e.flags) or "-", "bad" if e.flags else None),
            cell(str(e.attempts) if e.attempts else "-", "warn" if e.retries else None, "right"),
            cell("🔒" if e.mtls else "·"), cell(SEEN_BY.get(e.reporter, e.reporter), "idle"),
        )))
    return out


def explanation_text(event, trace) -> Text:
    text = Text()
    for label, value in explain(event, trace):
        text.append(f"{label:>10}  ", style="bold cyan")
        text.append(value + "\n")
    return text


class TapView(Vertical):
    def compose(self):
        yield Static("", id="tap-head", classes="head")
        yield LiveTable(COLUMNS, id="tap-table")
        yield Static("select a request (↑/↓) to see why it went where it went", id="tap-explain")

    def draw(self, app) -> None:
        state = app.state
        rate = state.tap_meter.rate(app.clock())
        parts = [f"Tap — {rate:.0f} lines/s"]
        if app.filter_service or app.filter_status:
            parts.append(f"filter: {app.filter_service or 'any service'} {app.filter_status or 'any status'}")
        if app.paused:
            parts.append("[b yellow]PAUSED[/] (space resumes)")
        if state.sampling > 1:
            parts.append(f"[b yellow]sampling 1 in {state.sampling}[/] (faster than it can draw)")
        self.query_one("#tap-head", Static).update(" · ".join(parts))
        self.query_one(LiveTable).show(rows(list(state.tap)[-50:], app.localtime))
        self.draw_explanation(app)

    def selected_event(self, app):
        key = self.query_one(LiveTable).selected_key()
        if key is None:
            return None
        return next((e for e in app.state.tap if str(e.seq) == key), None)

    def draw_explanation(self, app) -> None:
        event = app.selected_event
        if event is None:
            return
        trace = app.state.traces.get(event.trace_id) if event.trace_id else None
        self.query_one("#tap-explain", Static).update(explanation_text(event, trace))

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        event = self.selected_event(self.app)
        if event is not None and event is not self.app.selected_event:
            self.app.select_event(event)
