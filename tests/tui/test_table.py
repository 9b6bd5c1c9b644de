"""LiveTable: a stream's rows keep their renderings when they move; only new or changed cells are rendered.
And the tap's lines in the order the requests ended."""

from textual.app import App
from textual.widgets import DataTable

from tui.views.table import LiveTable, cell

COLUMNS = ("SEQ", "PATH", "STATUS")


def stream(newest: int, count: int = 20) -> list[tuple[str, tuple]]:
    """The tap's rows: newest first."""
    return [(str(s), (cell(str(s)), cell(f"/items/{s}"), cell("200", "good")))
            for s in range(newest, newest - count, -1)]


class Table(App):
    def compose(self):
        yield LiveTable(COLUMNS, id="t")


def counting(monkeypatch) -> list:
    """The row of each cell DataTable itself renders from here on (what LiveTable saves)."""
    rendered = []
    base = DataTable._render_cell

    def render(self, row_index, column_index, *args, **kwargs):
        if row_index >= 0:
            rendered.append(row_index)
        return base(self, row_index, column_index, *args, **kwargs)
    monkeypatch.setattr(DataTable, "_render_cell", render)
    return rendered


async def test_new_rows_on_top_render_only_the_new_rows_and_clicks_still_hit_the_right_row(monkeypatch):
    app = Table()
    async with app.run_test(size=(80, 30)) as pilot:
        table = app.query_one(LiveTable)
        table.show(stream(100))
        await pilot.pause()
        rendered = counting(monkeypatch)
        table.show(stream(102))  # two new requests on top, the two oldest gone
        await pilot.pause()
        assert table.keys == [str(s) for s in range(102, 82, -1)]
        assert [table.get_row_at(i)[0].plain for i in (0, 1, 2, 19)] == ["102", "101", "100", "83"]
        # Rendered again: the two new rows' 3 cells, and the cursor row (the cursor stays on row 0, now 102)
        # and row 1 (no longer under the cursor); the 18 rows that only moved down are reused.
        assert len(rendered) <= 4 * len(COLUMNS), sorted(rendered)
        # The moved rows answer a click with where they are now.
        await pilot.click(LiveTable, offset=(2, 1 + 5))  # the header is line 0: row 5
        assert table.cursor_row == 5 and table.selected_key() == "97"


async def test_unchanged_rows_are_not_rendered_again_and_changed_cells_are(monkeypatch):
    app = Table()
    async with app.run_test(size=(80, 30)) as pilot:
        table = app.query_one(LiveTable)
        rows = stream(10, 5)
        table.show(rows)
        await pilot.pause()
        rendered = counting(monkeypatch)
        table.show(stream(10, 5))  # the same content, new objects: nothing to draw
        await pilot.pause()
        assert rendered == []
        changed = list(rows)
        changed[3] = ("7", (cell("7"), cell("/items/7"), cell("503", "bad")))  # same text length, new colour
        table.show(changed)
        await pilot.pause()
        assert set(rendered) == {3} and table.get_row("7")[2].style == "bold red"


def test_tap_lines_stay_in_the_order_the_requests_ended():
    # Issue 18, defect 17: batches from several sidecars interleave; the view is time-ordered.
    from tui.model import Peer, TapEvent
    from tui.state import MeshState

    def line(seq, ts):
        return TapEvent(seq=seq, ts=ts, trace_id=None, reporter="outbound", source=Peer("web", "v1", "w"),
                        destination=Peer("catalog", "v1", "c"), method="GET", authority="catalog", path="/",
                        route=None, status=200, flags=(), duration_ms=1.0, attempts=1, retries=0, mtls=True)

    state = MeshState()
    state.take_tap([line(1, 10.0), line(2, 12.0)], now=13)
    state.take_tap([line(3, 13.5), line(4, 11.0), line(5, 9.0)], now=14)  # a later batch, older requests
    assert [e.ts for e in state.tap] == [9.0, 10.0, 11.0, 12.0, 13.5]
