"""A DataTable that is redrawn whole from rows each refresh, keeping the cursor on the same row."""

from __future__ import annotations

import contextlib

from rich.text import Text
from textual.css.query import NoMatches
from textual.widgets import DataTable

STYLES = {"good": "green", "warn": "yellow", "bad": "bold red", "idle": "grey50"}


def cell(text: str, health: str | None = None, justify: str = "left") -> Text:
    return Text(text, style=STYLES.get(health or "", ""), justify=justify)


class LiveTable(DataTable):
    """Columns set once; `show(rows)` with rows of (key, cells) replaces the content."""

    def __init__(self, columns: tuple[str, ...], **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._columns = columns
        self.keys: list[str] = []

    def on_mount(self) -> None:
        self.add_columns(*self._columns)

    def show(self, rows: list[tuple[str, tuple]]) -> None:
        keys = [key for key, _ in rows]
        if keys == self.keys:
            # Same rows as before: update cells in place (cheaper, and no flicker).
            for key, cells in rows:
                for column, value in zip(self.columns, cells):
                    self.update_cell(key, column, value, update_width=True)  # "9.8ms" -> "12ms" must fit
            return
        selected = self.selected_key()
        kept = _scrolled(self.keys, keys)
        if kept:
            # A stream (the tap): the oldest rows scrolled off, new ones came in below.
            # Remove and append only those, instead of rebuilding every row twice a second.
            for key in self.keys[:len(self.keys) - kept]:
                self.remove_row(key)
            for key, cells in rows[kept:]:
                self.add_row(*cells, key=key)
        else:
            self.clear()
            for key, cells in rows:
                self.add_row(*cells, key=key)
        self.keys = keys
        if selected in keys:
            self.move_cursor(row=keys.index(selected), animate=False)

    def selected_key(self) -> str | None:
        if not self.keys or not 0 <= self.cursor_row < len(self.keys):
            return None
        return self.keys[self.cursor_row]


def _scrolled(old: list[str], new: list[str]) -> int:
    """How many of `old`'s last rows start `new` (0 when `new` is not `old` scrolled on)."""
    if not old or not new or new[0] not in old:
        return 0
    start = old.index(new[0])
    kept = len(old) - start
    return kept if old[start:] == new[:kept] else 0


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
