"""Routes (top): the busiest routes, with effective against actual success.

EFFECTIVE is what callers saw, ACTUAL what every attempt saw; the gap between
them is what retries hid (Linkerd's `routes -o wide`), and RETRIES/REQ is
what hiding it cost.
"""

from __future__ import annotations

from textual.containers import Vertical
from textual.widgets import Static

from tui.feed import health, millis, percent, rps
from tui.views.table import LiveTable, cell

COLUMNS = ("SERVICE", "ROUTE", "RPS", "EFFECTIVE", "ACTUAL", "HIDDEN BY RETRIES", "RETRIES/REQ", "P50", "P95")


def rows(state, service_filter: str | None = None, limit: int = 30) -> list[tuple[str, tuple]]:
    busiest = sorted(state.stat.routes, key=lambda r: (-r.rps, r.service, r.route))[:limit]
    out = []
    for r in busiest:
        if service_filter and service_filter not in r.service:
            continue
        hidden = (r.effective - r.actual) if r.effective is not None and r.actual is not None else None
        out.append((f"{r.service}:{r.route}", (
            cell(r.service, health(r.effective)), cell(r.route), cell(rps(r.rps), None, "right"),
            cell(percent(r.effective), health(r.effective), "right"), cell(percent(r.actual), health(r.actual), "right"),
            cell("-" if hidden is None else f"{hidden * 100:+.2f} pts", "warn" if hidden and hidden > 0.001 else None,
                 "right"),
            cell(f"{r.retries / r.requests:.2f}" if r.requests else "-", None, "right"),
            cell(millis(r.latency.p50), None, "right"), cell(millis(r.latency.p95), None, "right"),
        )))
    return out


class RoutesView(Vertical):
    def compose(self):
        yield Static("", id="routes-head", classes="head")
        yield LiveTable(COLUMNS, id="routes-table")

    def draw(self, app) -> None:
        self.query_one("#routes-head", Static).update(
            f"Routes — busiest first, window {app.window_s:g} s · EFFECTIVE after retries, ACTUAL per attempt")
        self.query_one(LiveTable).show(rows(app.state, app.filter_service))

    def selected_service(self) -> str | None:
        key = self.query_one(LiveTable).selected_key()
        return key.split(":", 1)[0] if key else None
