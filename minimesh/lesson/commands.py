"""The `minimesh lesson …` and `minimesh fault` commands, over a running stack."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import click

from minimesh.errors import UserError
from minimesh.lesson.catalog import all_lessons, load_guide
from minimesh.lesson.check import Stack, check_step, load_stack, manifests_in_force
from minimesh.runner import state as st
from minimesh.runner.config_commands import control_client

STEP_FILE = "lesson-step.json"


def list_lessons() -> None:
    for path in all_lessons():
        guide = load_guide(str(path))
        click.echo(f"{path.name:<20} {guide.lesson.title}  ({len(guide.steps)} steps)")


def show(ref: str) -> None:
    guide = load_guide(ref)
    click.echo(f"{guide.lesson.dir.name}: {guide.lesson.title}")
    click.echo(f"Start it:  minimesh up {guide.lesson.dir}")
    click.echo(f"Read it:   {guide.lesson.dir / 'README.md'}\n")
    for step in guide.steps:
        click.echo(f"  step {step.number}  {step.title}")
        for path in step.manifests:
            click.echo(f"          minimesh apply {path}")
        for target, knobs in step.faults:
            click.echo(f"          minimesh fault {target} " + " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in knobs))
        if step.look:
            click.echo(f"          look: {step.look}")


def _where(control: str | None, gateway: str | None, home: str | None) -> tuple[str, str, object]:
    client = control_client(control, home)
    if gateway is None:
        state = st.read_state(st.resolve_home(home))
        if control or not state:
            raise UserError("pass --gateway URL too when checking a stack given by --control")
        gateway = state["gateway_url"]
    return client.url, gateway.rstrip("/"), client


def running_lesson(client, home) -> str | None:
    """The lesson the stack runs: its control plane says (both modes), else this home's state.json."""
    try:
        named = client.status().get("lesson")
    except UserError:
        named = None
    if named:
        return named
    state = st.read_state(st.resolve_home(home)) or {}
    return Path(state["lesson"]).name if state.get("lesson") else None


def ensure_same_lesson(guide, client, home, verb: str) -> None:
    """A step of lesson 03 in a lesson-01 stack would apply 03's manifests to the wrong shop: refuse."""
    wanted = guide.lesson.dir.name
    running = running_lesson(client, home)
    if running and running != wanted:
        raise UserError(f"the running stack is lesson {running}, not {wanted}; `minimesh lesson {verb} "
                        f"{running}` works on it, or switch: `minimesh down && minimesh up lessons/{wanted}`")


def step(ref: str, number: int, *, control=None, home=None) -> None:
    """Put a step's manifests and fault knobs in force, and remember it as the current step."""
    guide = load_guide(ref)
    chosen = guide.step(number)
    control_url, gateway_url, client = _where(control, "", home)
    ensure_same_lesson(guide, client, home, "step")
    if chosen.manifests:
        from minimesh.config import load_files

        from minimesh.runner.config_commands import warn_surprises

        resources = load_files([str(p) for p in chosen.manifests])
        warn_surprises(resources)
        started = time.monotonic()
        answer = client.apply([r.manifest for r in resources], source=", ".join(map(str, chosen.manifests)))
        for result in answer.get("results", []):
            click.echo(f"{result['kind'].lower()}/{result['name']} {result['action']}")
        changed = any(r.get("action") != "unchanged" for r in answer.get("results", []))
        click.echo(wait_for_rollout(client, answer["version"], started=started).describe(changed))
    stack = asyncio.run(load_stack(control_url, gateway_url))
    for target, knobs in chosen.faults:
        asyncio.run(set_fault(stack, target, dict(knobs)))
    _remember(home, guide.lesson.dir.name, number)
    click.echo(f"step {number} of {guide.lesson.dir.name} in force: {chosen.title}")
    if chosen.look:
        click.echo(f"look: {chosen.look}")


def wait_for_rollout(client, config_version: int, timeout: float = 10.0, started: float | None = None):
    """Return once every proxy has ACKed config `config_version` (or newer); see runner/rollout.py."""
    from minimesh.runner.rollout import wait_for_rollout as wait

    return wait(client, config_version, timeout, started=started)


def check(ref: str, number: int | None, *, control=None, gateway=None, home=None, gateway_https=None) -> bool:
    guide = load_guide(ref)
    control_url, gateway_url, client = _where(control, gateway, home)
    ensure_same_lesson(guide, client, home, "check")
    stored = client.config()["resources"]
    stack = asyncio.run(load_stack(control_url, gateway_url))
    if gateway_https is None and not control:
        gateway_https = (st.read_state(st.resolve_home(home)) or {}).get("gateway_https_url")
    stack.gateway_https_url = gateway_https
    if number is None:
        number = _current_step(home, guide, stored)
    chosen = guide.step(number)
    click.echo(f"Checking {guide.lesson.dir.name}, step {number}: {chosen.title}")
    verdicts = asyncio.run(check_step(chosen, stack, stored, guide.lesson.dir.name[:2]))
    for v in verdicts:
        mark = "✓" if v.ok else "✗"
        click.echo(f"  {mark} {v.what}" + (f" — {v.detail}" if v.detail else ""))
        if v.hint:
            click.echo(f"      hint: {v.hint}")
    click.echo(outcome(verdicts))
    return all(v.ok for v in verdicts)


def outcome(verdicts) -> str:
    """The last line of a check: PASS, or FAIL pointing at hints only when there are some."""
    failed = [v for v in verdicts if not v.ok]
    if not failed:
        return "PASS"
    if any(v.hint for v in failed):
        return "FAIL: the stack is not where this step expects it (see the hints above)"
    return (f"FAIL: {len(failed)} of {len(verdicts)} expectations not met (the ✗ lines say what was measured); "
            "the lesson's README explains what this step should show")


async def set_fault(stack: Stack, target: str, knobs: dict) -> list[str]:
    instances = stack.targets(target)
    if not instances:
        names = ", ".join(sorted({i["instance"] for i in stack.instances if i.get("kind") == "sidecar"}))
        raise UserError(f"no instance or service named {target!r}; the instances are: {names}")
    done = []
    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=5)) as http:
        for inst in instances:
            async with http.put(f"http://{inst['addresses']['app']}/_fault", json=knobs) as resp:
                answer = await resp.json()
                if resp.status != 200:
                    raise UserError(f"{inst['instance']} refused the fault: {answer.get('error', answer)}")
            done.append(f"{inst['instance']}: failure_rate={answer['failure_rate']:g} delay_ms={answer['delay_ms']:g}")
    return done


def fault(target: str, failure_rate, delay_ms, *, control=None, home=None) -> None:
    knobs = {k: v for k, v in (("failure_rate", failure_rate), ("delay_ms", delay_ms)) if v is not None}
    control_url = control_client(control, home).url
    stack = asyncio.run(load_stack(control_url, ""))
    if not knobs:
        raise UserError("say what to set: --failure-rate 0.3 and/or --delay-ms 200")
    for line in asyncio.run(set_fault(stack, target, knobs)):
        click.echo(line)


def _remember(home, lesson: str, number: int) -> None:
    path = st.resolve_home(home) / STEP_FILE
    path.write_text(json.dumps({"lesson": lesson, "step": number}))


def _current_step(home, guide, stored: list[dict]) -> int:
    """The step last put in force with `lesson step`; else the last whose manifests are in force."""
    try:
        saved = json.loads((st.resolve_home(home) / STEP_FILE).read_text())
        if saved.get("lesson") == guide.lesson.dir.name:
            return saved["step"]
    except (OSError, ValueError):
        pass
    for candidate in reversed(guide.steps):
        if candidate.manifests and all(v.ok for v in manifests_in_force(candidate, stored, "")):
            return candidate.number
    return 1
