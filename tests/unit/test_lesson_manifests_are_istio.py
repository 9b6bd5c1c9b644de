"""Every Istio manifest a lesson ships is real Istio, and minimesh loads it.

This is the promise to the learner (DESIGN.md): what they write in a lesson
works on a real Istio cluster later. Each YAML document under lessons/ whose
apiVersion is an *.istio.io group is checked against Istio's CRD schemas
(tests/istio_schema.py) and loaded with minimesh's own loader.

A lesson may ship a deliberately broken manifest for its break-it exercise;
name it `*broken*.yaml` (or put it under a `broken/` folder) and it is
skipped here — a lesson check should then show minimesh refusing it.
"""

import re
from pathlib import Path

import yaml

from minimesh.config import load_manifests, parse_resource
from minimesh.errors import ConfigError
from tests.istio_schema import validate_istio

ROOT = Path(__file__).resolve().parents[2]
LESSONS = ROOT / "lessons"
_ISTIO_API = re.compile(r"^[a-z.]+\.istio\.io/")


def _is_istio(doc) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str) and bool(_ISTIO_API.match(doc["apiVersion"]))


def _manifest_files() -> list[tuple[Path, list[dict]]]:
    found = []
    for path in sorted(LESSONS.glob("*/**/*.yaml")):
        relative = path.relative_to(LESSONS)
        if "broken" in path.name or "broken" in relative.parts[:-1]:
            continue
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        except yaml.YAMLError:
            docs = []  # not a manifest file we can judge here; lesson.yaml tests own its syntax
            if "istio.io/" in path.read_text(encoding="utf-8"):
                docs = [{"apiVersion": "?.istio.io/?", "kind": "unparseable YAML"}]
        istio = [d for d in docs if _is_istio(d)]
        if istio:
            found.append((path, docs))
    return found


def test_lessons_folder_exists():
    assert LESSONS.is_dir(), f"{LESSONS} is missing"


def test_every_istio_manifest_in_the_lessons_is_valid_istio_and_loads():
    problems = []
    files = _manifest_files()
    for path, docs in files:
        name = path.relative_to(ROOT)
        for index, doc in enumerate(docs):
            if not _is_istio(doc):
                continue
            problems += [f"{name} document {index + 1}: Istio refuses it: {p}" for p in validate_istio(doc)]
        try:
            if all(_is_istio(d) for d in docs):
                load_manifests(path.read_text(encoding="utf-8"), str(name))
            else:  # a file mixing in non-Istio documents: judge the Istio ones alone
                for doc in filter(_is_istio, docs):
                    parse_resource(doc, str(name))
        except ConfigError as e:
            problems.append(f"minimesh refuses it: {e}")
    # An empty list of files is fine until the lessons are written.
    assert problems == [], f"{len(problems)} problem(s) in {len(files)} manifest file(s):\n" + "\n".join(problems)


def test_the_check_above_can_fail(tmp_path, monkeypatch):
    # Point the scan at a fake lesson with a misspelled field: it must be reported.
    lesson = tmp_path / "lessons" / "99-typo"
    lesson.mkdir(parents=True)
    (lesson / "route.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
        "spec:\n  hosts: [x]\n  http:\n  - route: [{destination: {host: x}}]\n    retriez: {attempts: 1}\n"
    )
    (lesson / "broken-on-purpose.yaml").write_text("apiVersion: networking.istio.io/v1\nkind: Nope\n")
    monkeypatch.setitem(globals(), "LESSONS", tmp_path / "lessons")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert [p.name for p, _ in _manifest_files()] == ["route.yaml"]
    try:
        test_every_istio_manifest_in_the_lessons_is_valid_istio_and_loads()
    except AssertionError as e:
        assert "retriez" in str(e) and "Istio refuses it" in str(e) and "minimesh refuses it" in str(e)
    else:
        raise AssertionError("a misspelled field in a lesson went unnoticed")
