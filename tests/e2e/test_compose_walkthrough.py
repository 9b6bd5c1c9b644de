"""Lessons 01-05 in compose mode, following only their READMEs (`make compose-e2e`).

For each lesson, every command block its README marks as working in compose
mode (```sh compose, tests/e2e/readme_walkthrough.py) is run in order, from
the README's own `docker compose ... up -d` to its `down -v`, as a learner
would type it: each block in bash with `set -e` (every command's exit code
counts), the variables it exports kept for the next block, and `docker
compose` read as `docker-compose` where only Compose v1 is installed (the
README's own advice). The output each block promises must appear, numbers
aside. The same stack then serves the per-step checks the other compose
lessons get in test_compose_stacks.py (`lesson step` and `lesson check` at
every step), before the README's cleanup, which must leave nothing behind.

Needs Docker, docker-compose and the image `minimesh:local`; skipped unless
MINIMESH_COMPOSE_E2E=1, like the rest of the compose e2e.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.readme_walkthrough import WALKED as WALKED_NAMES, blocks, compose_up, promise_problems
from tests.e2e.test_compose_stacks import CONTROL, GATEWAY, REPO, ComposeStack, minimesh, pytestmark, step_numbers

pytestmark = [pytestmark[0], pytest.mark.timeout(900)]  # the same skip; a lesson's whole README takes longer

WALKED = [REPO / "lessons" / name for name in WALKED_NAMES]


def compose_v2() -> bool:
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


class ReadmeStack(ComposeStack):
    """The stack under the README's own project name (minimesh-NN-slug), not the e2e's."""

    def __init__(self, lesson_dir: Path, home: Path):
        super().__init__(lesson_dir, home)
        project, file = compose_up((lesson_dir / "README.md").read_text(encoding="utf-8"))
        self.project, self.file = project, str(REPO / file)


def run_block(code: str, env: dict, tmp_path: Path, timeout: float = 300) -> tuple[subprocess.CompletedProcess, dict]:
    """One README block in bash -e; returns the run and the environment it leaves for the next block."""
    if not compose_v2():
        code = code.replace("docker compose ", "docker-compose ")
    env_file = tmp_path / "env"
    env_file.unlink(missing_ok=True)
    script = f"set -e\n{code}\nenv -0 > {env_file}\n"
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    if r.returncode == 0 and env_file.exists():
        env = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
    return r, env


@pytest.fixture
def readme_stack(request, tmp_path):
    s = ReadmeStack(request.param, tmp_path / "home")
    (tmp_path / "home").mkdir()
    s.down()  # left over from an interrupted run
    yield s
    s.down()


@pytest.mark.parametrize("readme_stack", WALKED, ids=lambda p: p.name, indirect=True)
def test_the_readme_walkthrough_in_compose_mode_then_every_step_checks(readme_stack, tmp_path, record_property):
    stack = readme_stack
    walk = blocks((stack.lesson / "README.md").read_text(encoding="utf-8"))
    *commands, cleanup = walk
    assert "down -v" in cleanup.code, "the README's last compose block should be its cleanup (down -v)"
    # A learner's shell: the repository as the working directory, a home of its own, no compose variables yet.
    bin_dir = str(Path(os.sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMESH_") or k == "MINIMESH_BASE_IMAGE"}
    env.update({"MINIMESH_HOME": str(stack.home), "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"})
    timings = {}
    for block in commands:
        start = time.monotonic()
        r, env = run_block(block.code, env, tmp_path)
        where = f"{stack.lesson.name}/README.md:{block.line}"
        assert r.returncode == 0, f"{where} exited {r.returncode}:\n{block.code}\n--- out\n{r.stdout}\n--- err\n{r.stderr}"
        if block.promised:
            missing = promise_problems(block.promised, r.stdout + r.stderr)
            assert not missing, f"{where}: the README promises lines that did not appear:\n" + "\n".join(
                missing) + f"\n--- printed\n{r.stdout}{r.stderr}"
        timings[f"line{block.line}_s"] = round(time.monotonic() - start, 1)
    # The same stack, every step checked, as test_compose_stacks does for the other lessons.
    ref = stack.lesson.name[:2]
    for number in step_numbers(stack.lesson):
        r = minimesh("lesson", "step", ref, str(number), "--control", CONTROL, home=stack.home)
        assert r.returncode == 0, f"step {number}:\n{r.stdout}{r.stderr}"
        r = minimesh("lesson", "check", ref, "--step", str(number), "--control", CONTROL,
                     "--gateway", GATEWAY, home=stack.home)
        assert r.returncode == 0 and "PASS" in r.stdout, f"check of step {number}:\n{r.stdout}{r.stderr}"
    # The README's cleanup leaves no container, network or volume of the project.
    r, _ = run_block(cleanup.code, env, tmp_path)
    assert r.returncode == 0, f"cleanup exited {r.returncode}:\n{r.stdout}{r.stderr}"
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
    record_property("timings", timings)
    print(f"{stack.lesson.name}: README walkthrough {timings}")
