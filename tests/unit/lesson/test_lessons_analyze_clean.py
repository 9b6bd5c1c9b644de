"""Every lesson's shipped manifests, taken together in file order, give `minimesh analyze` nothing to say."""

from pathlib import Path

import pytest

from minimesh.config import analyze, load_files

LESSONS = sorted(p for p in (Path(__file__).resolve().parents[3] / "lessons").iterdir() if p.is_dir())


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_lesson_manifests_analyze_clean(lesson):
    manifests = sorted(p for p in lesson.glob("*.yaml") if p.name != "lesson.yaml")
    assert [str(m) for m in analyze(load_files(manifests))] == []
