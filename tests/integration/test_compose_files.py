"""Every lesson has a committed compose file that is valid and up to date.

The compose files are generated (`minimesh compose`), so two things can go
wrong: the generator writes something Docker Compose would refuse, or someone
edits a lesson and forgets to regenerate. Both fail here, for every lesson
folder that exists — a new lesson is covered the day it lands.
"""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from minimesh.runner.compose import compose_model, compose_path, render
from minimesh.runner.topology import load_lesson

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "../shared/reference/compose-spec.json"
LESSONS = sorted(p.parent for p in (REPO / "lessons").glob("*/lesson.yaml"))


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def minimesh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minimesh.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_there_are_lessons_to_check():
    assert len(LESSONS) >= 2


@pytest.mark.parametrize("lesson_dir", LESSONS, ids=lambda p: p.name)
def test_committed_compose_file_validates_against_the_compose_spec(lesson_dir, validator):
    path = REPO / "compose" / f"{lesson_dir.name}.yaml"
    assert path.is_file(), f"no {path.relative_to(REPO)}; run: minimesh compose {lesson_dir.relative_to(REPO)}"
    errors = sorted(validator.iter_errors(yaml.safe_load(path.read_text())), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("lesson_dir", LESSONS, ids=lambda p: p.name)
def test_compose_check_passes_for_every_lesson(lesson_dir):
    r = minimesh("compose", "--check", str(lesson_dir.relative_to(REPO)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "up to date" in r.stdout


@pytest.mark.parametrize("lesson_dir", LESSONS, ids=lambda p: p.name)
def test_each_instance_is_an_app_and_a_sidecar_in_its_namespace(lesson_dir):
    lesson = load_lesson(lesson_dir)
    services = compose_model(lesson)["services"]
    for inst in lesson.instances():
        app, sidecar = services[inst.name], services[f"{inst.name}-sidecar"]
        assert app["restart"] == "unless-stopped"
        assert sidecar["network_mode"] == f"service:{inst.name}"
        assert sidecar["depends_on"]["control"] == {"condition": "service_healthy"}
        assert app["environment"]["HTTP_PROXY"] == "http://127.0.0.1:15001"
        assert app["environment"]["INSTANCE"] == inst.name
        # The image holds the repository: commands are relative to it, never host paths.
        assert not any(str(REPO) in arg for arg in app["command"])
    # HTTP (Gateway servers on 80) and HTTPS (on 443), on the host's loopback only.
    assert services["gateway"]["ports"] == ["127.0.0.1:8080:8080", "127.0.0.1:8443:8443"]
    assert services["control"]["ports"] == ["127.0.0.1:15010:15010"]
    assert "control-home:/var/lib/minimesh" in services["control"]["volumes"]


def test_check_fails_and_names_the_file_when_a_compose_file_drifted(tmp_path):
    lesson = load_lesson(LESSONS[0])
    stale = tmp_path / "stale.yaml"
    stale.write_text(render(lesson).replace("replicas", "replica5").replace("8080", "8081"))
    r = minimesh("compose", "--check", str(LESSONS[0]), "-o", str(stale))
    assert r.returncode == 1
    assert "out of date" in r.stdout and "minimesh compose" in r.stdout
    # Regenerating fixes it.
    assert minimesh("compose", str(LESSONS[0]), "-o", str(stale)).returncode == 0
    assert minimesh("compose", "--check", str(LESSONS[0]), "-o", str(stale)).returncode == 0


def test_default_output_is_compose_folder_beside_lessons():
    assert compose_path(LESSONS[0]) == REPO / "compose" / f"{LESSONS[0].name}.yaml"
