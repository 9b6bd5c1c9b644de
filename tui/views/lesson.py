"""Lesson: where the learner is, what to look at now, and a key for the next step.

`n` puts the next step in force (its manifests, waiting for every ACK, and
its fault knobs) and then runs its checks; `c` checks the current step
again. Results appear under the step, ✓ or ✗ with what was measured.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


def lesson_text(place, busy: str | None, log: list[str], verdicts, compose: bool = False) -> Text:
    """The panel; `compose` when the TUI watches a stack it did not find in MINIMESH_HOME (--control)."""
    text = Text()
    if place is None:
        start = ("a compose stack names its lesson itself (`docker compose -p minimesh-01-hello-mesh "
                 "-f compose/01-hello-mesh.yaml up -d`)" if compose
                 else "start one with `minimesh up lessons/01-hello-mesh`")
        text.append(f"No lesson: {start}, or pass --lesson 01.\n", style="grey50")
        return text
    guide = place.guide
    text.append(f"{place.name}: {guide.lesson.title}\n", style="bold")
    if guide.lesson.description:
        text.append(f"{guide.lesson.description}\n")
    text.append("\n")
    for step in guide.steps:
        here = step.number == place.step
        mark = "▶" if here else ("✓" if step.number < place.step else " ")
        text.append(f" {mark} step {step.number}  {step.title}\n", style="bold green" if here else "")
        if here and step.look:
            text.append(f"     look: {step.look}\n", style="cyan")
    if place.step == 0:
        text.append("\nNo step in force yet: press n to put step 1 in force and check it.\n", style="yellow")
    elif place.step < len(guide.steps):
        nxt = guide.steps[place.step]
        text.append(f"\nNext (n): step {nxt.number}  {nxt.title}\n", style="yellow")
    else:
        text.append("\nLast step: c checks it again.\n", style="yellow")
    if busy:
        text.append(f"\n{busy}\n", style="bold yellow")
    for line in log:
        text.append(f"  {line}\n", style="grey70")
    for v in verdicts or ():
        text.append(f"  {'✓' if v.ok else '✗'} {v.what}", style="green" if v.ok else "bold red")
        text.append(f" — {v.detail}\n" if v.detail else "\n")
        if v.hint:
            text.append(f"      hint: {v.hint}\n", style="grey70")
    return text


class LessonView(VerticalScroll):
    def compose(self):
        yield Static("Lesson — n: put the next step in force and check it · c: check this step", classes="head")
        yield Static("", id="lesson-body")

    def draw(self, app) -> None:
        self.query_one("#lesson-body", Static).update(
            lesson_text(app.lesson, app.lesson_busy, app.lesson_log, app.lesson_verdicts, compose=app.home is None))
