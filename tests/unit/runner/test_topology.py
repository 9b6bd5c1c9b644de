"""lesson.yaml parsing: good lessons become frozen specs; bad ones name file, line and field."""

import sys
import textwrap
from pathlib import Path

import pytest

from minimesh.errors import ConfigError, UserError
from minimesh.runner.topology import load_lesson


def write_lesson(root: Path, text: str, files=("demo-services/web.py", "demo-services/catalog.py")) -> Path:
    """A repo-shaped tree: <root>/lessons/01-x/lesson.yaml plus the scripts it names."""
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("print('hi')\n")
    lesson = root / "lessons" / "01-x"
    lesson.mkdir(parents=True, exist_ok=True)
    (lesson / "lesson.yaml").write_text(textwrap.dedent(text))
    return lesson


GOOD = """\
title: Retries
description: try retries
manifests: [retries.yaml]
steps: [{anything: goes}]
services:
  web:
    versions:
      v1: {command: [python, demo-services/web.py]}
  catalog:
    versions:
      v1: {command: [python, demo-services/catalog.py], replicas: 2, env: {FAILURE_RATE: "0.3", DELAY_MS: 5}}
      v2: {command: [python, demo-services/catalog.py], labels: {track: canary}}
"""


def test_good_lesson_becomes_specs_with_resolved_commands(tmp_path):
    lesson_dir = write_lesson(tmp_path, GOOD)
    (lesson_dir / "retries.yaml").write_text("")

    lesson = load_lesson(lesson_dir)

    assert lesson.title == "Retries"
    assert lesson.services == ["web", "catalog"]
    # `python` is our interpreter; the script is found in the repo that holds lessons/.
    web = lesson.versions[0]
    assert web.command == (sys.executable, str((tmp_path / "demo-services/web.py").resolve()))
    assert [i.name for i in lesson.instances()] == ["web-v1-0", "catalog-v1-0", "catalog-v1-1", "catalog-v2-0"]
    assert lesson.versions[1].env == {"FAILURE_RATE": "0.3", "DELAY_MS": "5"}
    assert lesson.versions[2].labels == {"track": "canary"} and lesson.versions[2].replicas == 1
    assert lesson.manifests == (lesson_dir / "retries.yaml",)
    assert lesson.steps == [{"anything": "goes"}] and lesson.description == "try retries"


def test_a_service_may_live_in_a_namespace(tmp_path):
    lesson = load_lesson(write_lesson(tmp_path, """\
        title: T
        services:
          catalog: {namespace: foo, versions: {v1: {command: [python, demo-services/catalog.py]}}}
          web: {versions: {v1: {command: [python, demo-services/web.py]}}}
        """))
    assert [(v.service, v.namespace) for v in lesson.versions] == [("catalog", "foo"), ("web", "default")]


def test_script_next_to_a_lesson_outside_a_repo_is_found(tmp_path):
    (tmp_path / "app.py").write_text("")
    (tmp_path / "lesson.yaml").write_text("title: T\nservices: {a: {versions: {v1: {command: [python, app.py, --x]}}}}\n")
    lesson = load_lesson(tmp_path)
    assert lesson.versions[0].command == (sys.executable, str(tmp_path / "app.py"), "--x")


@pytest.mark.parametrize("text, line, field, words", [
    ("title: T\nservise: {}\n", 2, "servise", "unknown field"),
    ("title: T\n", 1, "services", "required"),
    ("services: {web: {versions: {v1: {command: [python, demo-services/web.py]}}}}\n", 1, "title", "required"),
    ("title: T\nservices:\n  web:\n    versions:\n      v1:\n        command: [python, demo-services/web.py]\n"
     "        replica: 2\n", 7, "services.web.versions.v1.replica", "unknown field"),
    ("title: T\nservices:\n  web:\n    versions:\n      v1:\n        command: [python, demo-services/web.py]\n"
     "        replicas: 0\n", 7, "services.web.versions.v1.replicas", "at least 1"),
    ("title: T\nservices:\n  web:\n    versions:\n      v1:\n        command: python\n",
     6, "services.web.versions.v1.command", "non-empty list"),
    ("title: T\nservices:\n  web:\n    versions:\n      v1:\n        command: [python, nowhere.py]\n",
     6, "services.web.versions.v1.command", "nowhere.py not found"),
    ("title: T\nservices:\n  web:\n    versions:\n      v1:\n        command: [no-such-program-xyz]\n",
     6, "services.web.versions.v1.command", "not found on PATH"),
    ("title: T\nservices:\n  web:\n    versions:\n      v1:\n        command: [python, demo-services/web.py]\n"
     "        env: {A: [1]}\n", 7, "services.web.versions.v1.env.A", "must be a string"),
    ("title: T\ngateway: web\nservices:\n  web: {versions: {v1: {command: [python, demo-services/web.py]}}}\n",
     2, "gateway", "is gone: the ingress gateway serves only what Gateway + VirtualService manifests open"),
    ("title: T\nservices:\n  web: {namespace: Foo_1, versions: {v1: {command: [python, demo-services/web.py]}}}\n",
     3, "services.web.namespace", "must be a namespace name"),
    ("title: T\nmanifests: [missing.yaml]\nservices:\n  web: {versions: {v1: {command: [python, demo-services/web.py]}}}\n",
     2, "manifests.0", "does not exist"),
    ("title: T\nservices:\n  web: {version: {}}\n", 3, "services.web.version", "unknown field"),
    ("title: [unclosed\n", 2, "", "YAML syntax error"),
])
def test_bad_lesson_names_file_line_and_field(tmp_path, text, line, field, words):
    lesson_dir = write_lesson(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_lesson(lesson_dir)
    e = err.value
    assert (e.line, e.field) == (line, field)
    assert words in e.message
    assert str(e).startswith(f"{lesson_dir / 'lesson.yaml'}:{line}: ")


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "nope", "does not exist"),
    (lambda p: p, "has no lesson.yaml"),
])
def test_missing_lesson_is_one_user_error(tmp_path, make, words):
    with pytest.raises(UserError, match=words):
        load_lesson(make(tmp_path))
