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
