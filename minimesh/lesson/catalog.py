"""Finding lessons: `minimesh lesson list`, and what "02" or "retries" means."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minimesh.errors import UserError
from minimesh.lesson.steps import Step, parse_steps
from minimesh.runner.topology import Lesson, load_lesson
from minimesh.config.source import line_of, read_file


def lessons_root() -> Path:
    """./lessons when run from a checkout, else the lessons beside the installed package."""
    here = Path.cwd() / "lessons"
    if here.is_dir():
        return here
    beside = Path(__file__).resolve().parents[2] / "lessons"
    if beside.is_dir():
        return beside
    raise UserError("no lessons/ folder here; run minimesh from the minimesh checkout")


def all_lessons() -> list[Path]:
    return sorted(p.parent for p in lessons_root().glob("*/lesson.yaml"))


def find_lesson(ref: str) -> Path:
    """A lesson by folder, number ("2", "02") or slug ("retries", "02-retries")."""
    as_path = Path(ref)
    if (as_path / "lesson.yaml").is_file():
        return as_path.resolve()
    for lesson in all_lessons():
        number, _, slug = lesson.name.partition("-")
        if ref in (lesson.name, slug) or (ref.isdigit() and number.isdigit() and int(ref) == int(number)):
            return lesson
    names = ", ".join(p.name for p in all_lessons())
    raise UserError(f"no lesson {ref!r}; the lessons are: {names}")


@dataclass(frozen=True)
class LessonGuide:
    lesson: Lesson
    steps: tuple[Step, ...]

    def step(self, number: int) -> Step:
        if not 1 <= number <= len(self.steps):
            raise UserError(f"lesson {self.lesson.dir.name} has steps 1 to {len(self.steps)}, not {number}")
        return self.steps[number - 1]


def load_guide(ref: str) -> LessonGuide:
    lesson = load_lesson(find_lesson(ref))
    source = lesson.dir / "lesson.yaml"
    lines = read_file(source).lines
    steps = parse_steps(lesson.steps, lesson_dir=lesson.dir, source=str(source),
                        line_of=lambda path: line_of(lines, path))
    return LessonGuide(lesson, steps)
