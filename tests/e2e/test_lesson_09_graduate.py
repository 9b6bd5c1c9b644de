"""Lesson 09 end to end: the shop with its canary split, then its Kubernetes export checked offline.

The cluster steps (kind, istioctl) cannot run here; what CI can hold to the
promise is step 2's check: the export validates against Kubernetes' and
Istio's schemas, and a broken export makes that check fail.
"""

import pytest

from minimesh.lesson.export_check import kubernetes_problems
from minimesh.runner.k8s_export import kubernetes_objects
from minimesh.runner.topology import load_lesson
from tests.support.stack import REPO, running_stack

LESSON = REPO / "lessons" / "09-graduate"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(LESSON, tmp_path_factory.mktemp("lesson09") / "home") as stack:
        yield stack


@pytest.mark.parametrize("step", [1, 2])
def test_lesson_check_passes_at_every_step(stack, step):
    r = stack.cli("lesson", "step", "09", str(step))
    assert r.returncode == 0, r.stdout + r.stderr
    r = stack.cli("lesson", "check", "09")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"step {step}" in r.stdout and "PASS" in r.stdout
    if step == 2:
        assert "exports to valid Kubernetes + Istio" in r.stdout and "14 Kubernetes objects" in r.stdout


def test_the_export_check_fails_on_a_broken_export():
    # What step 2's check would say of an export whose Deployment lost its service account and has a typo.
    objects = kubernetes_objects(load_lesson(LESSON))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["serviceAccountName"] = "nobody"
    deployment["spec"]["replica"] = 2
    problems = kubernetes_problems(objects)
    assert any("'replica' was unexpected" in p for p in problems), problems
    assert any("ServiceAccount that is not exported" in p for p in problems), problems
