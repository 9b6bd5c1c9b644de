"""The lesson panel's two actions, without printing: put a step in force, and check it.

The same pieces as `minimesh lesson step` / `lesson check`
(minimesh/lesson/commands.py), returning lines and verdicts for the panel
instead of echoing to a terminal the TUI owns.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from minimesh.lesson.catalog import LessonGuide, load_guide
from minimesh.runner.control_client import ControlClient

STEP_FILE = "lesson-step.json"  # as minimesh/lesson/commands.py writes it; its import (aiohttp) waits until needed


@dataclass(frozen=True)
class LessonPlace:
    guide: LessonGuide
    step: int  # the step in force (0: none yet)

    @property
    def name(self) -> str:
        return self.guide.lesson.dir.name


def current_step(home: Path | None, lesson_name: str) -> int:
    """The step last put in force (`lesson step`, or this panel), from <home>/lesson-step.json; 0 if none."""
    if home is None:
        return 0
    try:
        saved = json.loads((home / STEP_FILE).read_text())
    except (OSError, ValueError):
        return 0
    return int(saved.get("step") or 0) if saved.get("lesson") == lesson_name else 0


def locate(lesson_ref: str, home: Path | None) -> LessonPlace:
    guide = load_guide(lesson_ref)
    return LessonPlace(guide, current_step(home, guide.lesson.dir.name))


def put_in_force(place: LessonPlace, number: int, control_url: str, home: Path | None) -> list[str]:
    """Apply step `number`'s manifests (waiting for every ACK) and fault knobs; remember it."""
    from minimesh.lesson.check import load_stack
    from minimesh.lesson.commands import set_fault
    from minimesh.runner.rollout import wait_for_rollout

    step = place.guide.step(number)
    client = ControlClient(control_url)
    lines = []
    if step.manifests:
        from minimesh.config import load_files

        resources = load_files([str(p) for p in step.manifests])
        answer = client.apply([r.manifest for r in resources], source=", ".join(p.name for p in step.manifests))
        lines += [f"{r['kind'].lower()}/{r['name']} {r['action']}" for r in answer.get("results", [])]
        lines.append(wait_for_rollout(client, int(answer["version"]), 10.0).describe())

    async def faults():
        stack = await load_stack(control_url, "")
        done = []
        for target, knobs in step.faults:
            done += await set_fault(stack, target, dict(knobs))
        return done

    lines += asyncio.run(faults())
    if home is not None:
        (home / STEP_FILE).write_text(json.dumps({"lesson": place.name, "step": number}))
    lines.append(f"step {number} in force: {step.title}")
    return lines


def check(place: LessonPlace, number: int, control_url: str, gateway_url: str) -> list:
    """The step's verdicts (minimesh/lesson/check.py Verdict: ok, what, detail, hint)."""
    from minimesh.lesson.check import check_step, load_stack

    step = place.guide.step(number)
    stored = ControlClient(control_url).config()["resources"]

    async def run():
        stack = await load_stack(control_url, gateway_url)
        return await check_step(step, stack, stored, place.name[:2])

    return asyncio.run(run())
