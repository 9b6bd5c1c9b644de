"""A DataTable that is redrawn whole from rows each refresh, keeping the cursor on the same row.

Textual's DataTable renders every visible cell again after any change to
the table: its render caches are keyed by a counter that each added,
removed or updated row bumps. For a stream (the tap: new rows on top, 20
lines a second) that is every cell of the screen on every draw, though
almost none changed — most of the TUI's CPU. So LiveTable keeps each
cell's rendering by its row key and content, and when a row has only moved
it reuses it, restamping the row/column a mouse click reads (the only part
of a rendering that depends on where the row is). A cell is rendered again
only when its content, width, style or cursor/hover state changed.
"""

from __future__ import annotations

import contextlib
import itertools

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.css.query import NoMatches
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

STYLES = {"good": "green", "warn": "yellow", "bad": "bold red", "idle": "grey50"}
KEPT_CELLS = 4000  # cell renderings kept (a screenful is ~600); past it they start over


def cell(text: str, health: str | None = None, justify: str = "left") -> Text:
    return Text(text, style=STYLES.get(health or "", ""), justify=justify)


class LiveTable(DataTable):
    """Columns set once; `show(rows)` with rows of (key, cells) replaces the content."""

    def __init__(self, columns: tuple[str, ...], **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._columns = columns
        self.keys: list[str] = []
        self._shown: dict[str, tuple] = {}  # row key -> what its cells show (text, style, justify)
        self._version: dict[str, int] = {}  # row key -> a number that changes when its content does
        self._versions = itertools.count()
        self._drawn: dict[tuple, tuple] = {}  # cell key -> (row, column, rendered lines) — see _render_cell

    def on_mount(self) -> None:
        self.add_columns(*self._columns)

    def show(self, rows: list[tuple[str, tuple]]) -> None:
        keys = [key for key, _ in rows]
        if keys == self.keys:
            # Same rows as before: update the cells that changed, in place (cheaper, and no flicker).
            for key, cells in rows:
                if self._note(key, cells):
                    for column, value in zip(self.columns, cells):
                        self.update_cell(key, column, value, update_width=True)  # "9.8ms" -> "12ms" must fit
            return
        selected = self.selected_key()
        # Only what changed: rows gone are removed, new ones added, changed ones updated, and the
        # order set (a stream's new rows come in on top). Rows that stay keep their renderings.
        wanted, present = set(keys), set(self.keys)
        if 2 * len(wanted - present) > len(keys):  # mostly new rows: rebuilding is cheaper than moving
            self.clear()
            present = set()
        for key in self.keys if present else ():
            if key not in wanted:
                self.remove_row(key)
        for key, cells in rows:
            changed = self._note(key, cells)
            if key not in present:
                self.add_row(*cells, key=key)
            elif changed:
                for column, value in zip(self.columns, cells):
                    self.update_cell(key, column, value, update_width=True)
        if [k for k in self.keys if k in wanted and k in present] + [k for k in keys if k not in present] != keys:
            self._put_in_order(keys)
        for gone in set(self._shown) - set(keys):
            del self._shown[gone], self._version[gone]
        self.keys = keys
        if selected in keys:
            self.move_cursor(row=keys.index(selected), animate=False)

    def _put_in_order(self, keys: list[str]) -> None:
        """Rows in the order of `keys`, as DataTable.sort() leaves them (it can only sort by cell values)."""
        self._row_locations = TwoWayDict({RowKey(key): index for index, key in enumerate(keys)})
        self._update_count += 1
        self.refresh()

    def _note(self, key: str, cells: tuple) -> bool:
        """Remember what row `key` shows; True if that changed (its cells must be rendered again)."""
        shown = tuple((c.plain, str(c.style), c.justify) if isinstance(c, Text) else (str(c),) for c in cells)
        if self._shown.get(key) == shown:
            return False
        self._shown[key], self._version[key] = shown, next(self._versions)
        return True

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False):
        """DataTable's cell rendering, kept across moves of its row (module docstring)."""
        if row_index < 0 or column_index < 0:  # the header row and row labels: as DataTable does
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        key = (row_key, self._column_locations.get_key(column_index), self._version.get(row_key.value),
               base_style, width, cursor, hover, self._show_hover_cursor, self.show_cursor,
               self._pseudo_class_state)
        found = self._drawn.get(key)
        if found is None or key[2] is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            if len(self._drawn) >= KEPT_CELLS:
                self._drawn.clear()
            self._drawn[key] = (row_index, column_index, lines)
            return lines
        at_row, at_column, lines = found
        if (at_row, at_column) != (row_index, column_index):
            # Moved: the same segments, stamped with where the cell is now (what a click reports).
            where = Style.from_meta({"row": row_index, "column": column_index})
            lines = [list(Segment.apply_style(line, post_style=where)) for line in lines]
            self._drawn[key] = (row_index, column_index, lines)
        return lines

    def selected_key(self) -> str | None:
        if not self.keys or not 0 <= self.cursor_row < len(self.keys):
            return None
        return self.keys[self.cursor_row]


@contextlib.contextmanager
def closing_race():
    """Drop a draw that a worker delivered as the app was closing: its widgets are already gone.

    The workers hand their results over with call_from_thread; one can land after
    the screen's widgets were removed and before the app's on_unmount stops them.
    """
    try:
        yield
    except NoMatches:
        pass
