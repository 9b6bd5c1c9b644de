"""How a live table decides it can scroll (drop the oldest rows, append the new) instead of rebuilding."""

import pytest

from tui.views.table import _scrolled


@pytest.mark.parametrize("old, new, kept", [
    (["1", "2", "3"], ["2", "3", "4", "5"], 2),  # the tap: two kept, one scrolled off, two came in
    (["1", "2", "3"], ["4", "5"], 0),  # nothing in common: rebuild
    (["1", "2", "3"], ["1", "2", "3"], 3),  # nothing new (show() updates cells in place before this)
    (["1", "2", "3"], ["2", "9", "4"], 0),  # the same first key, but not the same rows after it
    (["1", "2", "3"], ["2"], 0),  # fewer rows than kept: not a scroll
    ([], ["1"], 0),
    (["1"], [], 0),
])
def test_a_table_scrolls_only_when_its_new_rows_begin_with_its_old_last_ones(old, new, kept):
    assert _scrolled(old, new) == kept
