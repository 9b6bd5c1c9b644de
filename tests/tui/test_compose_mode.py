"""The TUI on a compose stack (issue 18, defect 8): it finds the lesson from the control plane and
never tells a compose user to run `minimesh up`."""

import pytest

from tests.support.control import run_control_plane
from tui.run import build_app
from tui.views.lesson import lesson_text

pytestmark = pytest.mark.timeout(60)


async def test_a_compose_control_plane_names_its_lesson_for_the_panel(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMESH_LESSON", "01-hello-mesh")  # what compose/01-hello-mesh.yaml sets
    async with run_control_plane(tmp_path / "cp") as cp:
        app = build_app(cp.url, gateway="http://127.0.0.1:8080", home=str(tmp_path / "no-stack-here"))
    assert app.home is None and app.lesson is not None
    assert app.lesson.guide.lesson.dir.name == "01-hello-mesh"


def test_the_panel_without_a_lesson_speaks_the_stacks_mode():
    compose = lesson_text(None, None, [], None, compose=True).plain
    local = lesson_text(None, None, [], None, compose=False).plain
    assert "docker compose" in compose and "minimesh up" not in compose
    assert "minimesh up lessons/01-hello-mesh" in local
