"""Snapshot tests: the look of each view, fixed.

Each view is drawn from answers recorded from a real control plane fed with
the shop's traffic (tests/tui/recorded/shop.json, made by
`python -m tests.tui.shop_events`), replayed so that the picture does not
move, with the clock stopped at the recording's time. A view that changes
its look fails here until the new picture is accepted
(MINIMESH_UPDATE_SNAPSHOTS=1), which also refreshes docs/screenshots/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.control import wait_for
from tests.tui.shop_events import RECORDING

LESSON_FIXTURE = Path(__file__).parent / "lesson-fixture"  # not a real lesson: editing those must not move this
from tests.tui.snapshots import SIZE, assert_snapshot
from tui.app import MeshTUI
from tui.client import ControlClient, RecordedTransport
from tui.lesson_steps import LessonPlace
from minimesh.lesson.catalog import load_guide


def recorded_app(start_view: str, lesson=None) -> MeshTUI:
    recording = json.loads(RECORDING.read_text())
    client = ControlClient(RecordedTransport(recording["answers"], url="http://127.0.0.1:15010"))
    at = recording["recorded_at"]
    return MeshTUI(client, window_s=30, interval=0.01, tap_interval=0.01, lesson=lesson, clock=lambda: at,
                   localtime=time.gmtime, start_view=start_view)


async def settled(app: MeshTUI, pilot, refreshes: int) -> None:
    async def done():
        return app.refreshes >= refreshes
    await wait_for(done, 15, what=f"{refreshes} refreshes")
    await pilot.pause()
    await pilot.pause()


FRAMES = 12  # stat frames in the recording: one refresh each


@pytest.mark.parametrize("view", ["services", "edges", "routes"])
async def test_table_views_look(view):
    app = recorded_app(view)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot, FRAMES)
        assert_snapshot(app.export_screenshot(), view)


async def test_tap_view_with_an_explained_retry_looks():
    app = recorded_app("tap")
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot, FRAMES + 1)
        # Walk down to the first request that was retried: its explanation lists the attempts.
        table = app.query_one("#tap-table")
        retried = [i for i, e in enumerate(reversed(app.state.tap)) if e.retries and e.reporter == "outbound"]
        assert retried, "the recording should hold a retried checkout"
        target = retried[0]
        table.move_cursor(row=target)
        await wait_for(lambda: _true(app.selected_event and app.selected_event.trace_id in app.state.traces), 10,
                       what="the selected request's trace")
        await pilot.pause()
        assert_snapshot(app.export_screenshot(), "tap")


async def test_trace_view_looks():
    app = recorded_app("trace")
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot, FRAMES)
        await wait_for(lambda: _true(app.trace_id in app.state.traces), 10, what="the slowest trace")
        app.current().draw(app)
        await pilot.pause()
        assert_snapshot(app.export_screenshot(), "trace")


async def test_lesson_panel_looks():
    place = LessonPlace(load_guide(str(LESSON_FIXTURE)), step=2)
    app = recorded_app("lesson", lesson=place)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot, FRAMES)
        assert_snapshot(app.export_screenshot(), "lesson")


async def test_help_looks():
    app = recorded_app("services")
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot, FRAMES)
        await pilot.press("?")
        await pilot.pause()
        assert_snapshot(app.export_screenshot(), "help")


async def _true(value):
    return bool(value)
