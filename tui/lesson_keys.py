"""The lesson keys of the TUI: `n` puts the next step in force and checks it, `c` checks the current one.

A mixin of MeshTUI (app.py); the work itself is in lesson_steps.py, run in a
worker thread, and its progress is drawn in the lesson view.
"""

from __future__ import annotations

from textual import work


class LessonKeys:
    def action_lesson_next(self) -> None:
        if self.lesson is None or self.lesson_busy:
            self.say("no lesson loaded" if self.lesson is None else "busy with the lesson")
            return
        number = self.lesson.step + 1
        if number > len(self.lesson.guide.steps):
            self.say("that was the last step")
            return
        self.lesson_step(number, apply=True)

    def action_lesson_check(self) -> None:
        if self.lesson is None or self.lesson_busy or self.lesson.step == 0:
            self.say("no step in force to check (n puts the next one in force)")
            return
        self.lesson_step(self.lesson.step, apply=False)

    @work(thread=True, exclusive=True, group="lesson")
    def lesson_step(self, number: int, apply: bool) -> None:
        from dataclasses import replace

        from tui import lesson_steps

        what = "putting step %d in force and checking it…" if apply else "checking step %d…"
        self._deliver(self._lesson_update, what % number, [], None, False)
        log: list[str] = []
        try:
            if apply:
                log = lesson_steps.put_in_force(self.lesson, number, self.client.url, self.home)
                self._deliver(self._lesson_moved, replace(self.lesson, step=number))
            self._deliver(self._lesson_update, f"checking step {number}…", log, None, False)
            verdicts = lesson_steps.check(self.lesson, number, self.client.url, self.gateway_url or "")
            verdict = "PASS" if all(v.ok for v in verdicts) else "FAIL"
            self._deliver(self._lesson_update, f"step {number}: {verdict}", log, verdicts, True)
        except Exception as e:  # noqa: BLE001 — shown in the panel, the app keeps running
            self._deliver(self._lesson_update, f"step {number}: {e}", log, None, True)

    def _lesson_moved(self, place) -> None:
        self.lesson = place

    def _lesson_update(self, line: str, log: list[str], verdicts, done: bool) -> None:
        self.lesson_busy = None if done else line
        self.lesson_log = [line, *log] if done else log
        self.lesson_verdicts = verdicts
        if self.view == "lesson":
            self.current().draw(self)
        self.say(line)
