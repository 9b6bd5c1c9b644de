"""Edges: who calls whom — what Kiali's graph says, in text.

One row per caller version → callee version, from the caller's side. SPLIT
is this edge's share of the caller's requests to that service, so a canary
reads as "pricing v1 80 % · v2 20 %"; SUCCESS is what the caller got after
retries, ACTUAL every attempt; mTLS the padlock of the connection.
"""

from __future__ import annotations

from collections import defaultdict

from textual.containers import Vertical
from textual.widgets import Static

from tui.feed import health, millis, padlock, percent, rps
from tui.views.table import LiveTable, cell

COLUMNS = ("FROM", "", "TO", "SPLIT", "SUCCESS", "ACTUAL", "RETRIES", "RPS", "P95", "mTLS")


def split_share(edges) -> dict[int, float]:
    """Each edge's share of its caller's requests to the same service (by index)."""
    totals: dict[tuple, int] = defaultdict(int)
    for e in edges:
        totals[(e.source, e.source_version, e.destination)] += e.requests
    return {i: e.requests / totals[(e.source, e.source_version, e.destination)]
            for i, e in enumerate(edges) if totals[(e.source, e.source_version, e.destination)]}


def rows(state, service_filter: str | None = None) -> list[tuple[str, tuple]]:
    edges = sorted(state.stat.edges, key=lambda e: (e.source, e.source_version, e.destination, e.destination_version))
    shares = split_share(edges)
    out = []
    for i, e in enumerate(edges):
        if service_filter and service_filter not in (e.source + " " + e.destination):
            continue
        colour = health(e.success)
        share = shares.get(i)
        bar = "█" * round((share or 0) * 10)
        out.append((f"{e.source}/{e.source_version}>{e.destination}/{e.destination_version}", (
            cell(f"{e.source}/{e.source_version}"), cell("→"), cell(f"{e.destination}/{e.destination_version}", colour),
            cell(f"{bar:<10} {share * 100:3.0f}%" if share is not None else "-"),
            cell(percent(e.success), colour, "right"), cell(percent(e.actual), health(e.actual), "right"),
            cell(str(e.retries), "warn" if e.retries else None, "right"), cell(rps(e.rps), None, "right"),
            cell(millis(e.latency.p95), None, "right"), cell(padlock(e.mtls_share)),
        )))
    return out


class EdgesView(Vertical):
    def compose(self):
        yield Static("", id="edges-head", classes="head")
        yield LiveTable(COLUMNS, id="edges-table")

    def draw(self, app) -> None:
        self.query_one("#edges-head", Static).update(
            f"Edges — who calls whom, window {app.window_s:g} s · SPLIT: share of the caller's requests by version")
        self.query_one(LiveTable).show(rows(app.state, app.filter_service))

    def selected_service(self) -> str | None:
        key = self.query_one(LiveTable).selected_key()
        return key.split(">", 1)[1].split("/", 1)[0] if key else None
