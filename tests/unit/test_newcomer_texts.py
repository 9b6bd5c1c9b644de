"""What a newcomer copies out of the docs works as it stands (issue 18, defects 8 and 12).

- No page builds a path on `$MINIMESH_HOME` (unset for most learners: the path
  becomes /logs/…) or on `./.minimesh` (the home is per user now):
  `$(minimesh home)` is the spelling that always works.
- Each lesson's compose file runs as its own compose project, so two lessons
  never share containers or volumes, and its control plane knows its lesson.
"""

import re
from pathlib import Path

import pytest
import yaml

from minimesh.runner.compose import project_name, render
from minimesh.runner.topology import load_lesson

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "lessons").rglob("*.md")])
LESSONS = sorted(p for p in (ROOT / "lessons").glob("[0-9][0-9]-*") if (p / "lesson.yaml").is_file())


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_path_depends_on_an_unset_variable_or_the_current_folder(page):
    text = page.read_text(encoding="utf-8")
    assert not re.findall(r"\$\{?MINIMESH_HOME\}?/", text), "write $(minimesh home)/… instead"
    assert not re.findall(r"(?<![\w/])\.minimesh/", text), "the home is per user: $(minimesh home)/…"


def test_each_lesson_is_its_own_compose_project():
    names = []
    for lesson_dir in LESSONS:
        lesson = load_lesson(lesson_dir)
        text = render(lesson)
        assert f"docker compose -p {project_name(lesson)} -f compose/{lesson_dir.name}.yaml up -d" in text
        control = yaml.safe_load(text)["services"]["control"]
        assert control["environment"]["MINIMESH_LESSON"] == lesson_dir.name
        names.append(project_name(lesson))
    assert len(set(names)) == len(names)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docker-compose" in readme and "MINIMESH_CONTROL_URL" in readme  # v1 and the CLI/TUI flags


def test_lesson_04_does_not_say_the_traffic_was_plaintext_so_far():
    # Defect 3: auto mTLS is on from lesson 01 (both ends have a certificate).
    text = (ROOT / "lessons" / "04-mtls" / "README.md").read_text(encoding="utf-8")
    assert "so far been plain HTTP" not in text and "mutual TLS since lesson 01" in text
    # Defect 11: the break-it that asks for a CSR shows how to make one, and the status the CA answers.
    assert "build_csr" in text and "answers 403" in text and "answers 400" not in text


def test_lesson_05_step_1_shows_the_spans_its_lesson_makes():
    # Defect 5: web calls pricing once per item from the start (PRICING_CALLS: per-item, five items),
    # so step 1's trace has 4 + 2 x 5 = 14 spans; the README showed 6.
    lesson = load_lesson(ROOT / "lessons" / "05-tracing")
    per_item = any(v.service == "web" and v.env.get("PRICING_CALLS") == "per-item" for v in lesson.versions)
    text = (ROOT / "lessons" / "05-tracing" / "README.md").read_text(encoding="utf-8")
    step_1 = text.split("### 1.", 1)[1].split("### 2.", 1)[0]
    header = re.search(r"(\d+) spans", step_1)
    rows = [line for line in step_1.splitlines() if re.search(r" [▶◀] ", line)]
    pricing_calls = sum(1 for line in rows if "web ▶ pricing" in line)
    assert per_item and pricing_calls == 5
    assert int(header.group(1)) == len(rows) == 4 + 2 * pricing_calls
