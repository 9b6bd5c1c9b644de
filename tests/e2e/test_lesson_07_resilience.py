"""Lesson 07 end to end: payments slow, then broken, then flaky; the lesson's checks at every step.

Each step's `lesson check` measures what the step is about (the pile-up, the
breaker's fast 503 UO, the ejection, the retry budget, the injected fault).
Beyond the checks, step 3 asks `minimesh status` what a learner would: is the
broken instance shown as ejected, and by whom?
"""

import json

import pytest

from tests.support.stack import REPO, running_stack

LESSON = REPO / "lessons" / "07-resilience"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(LESSON, tmp_path_factory.mktemp("lesson07") / "home") as stack:
        yield stack


def test_check_fails_with_a_hint_before_the_step_is_applied(stack):
    r = stack.cli("lesson", "check", "07", "--step", "2")
    assert r.returncode == 1
    assert "destinationrule/payments" in r.stdout and "not applied" in r.stdout


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5])
def test_lesson_check_passes_at_every_step(stack, step):
    r = stack.cli("lesson", "step", "07", str(step))
    assert r.returncode == 0, r.stdout + r.stderr
    r = stack.cli("lesson", "check", "07")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"step {step}" in r.stdout and "PASS" in r.stdout
    if step == 3:
        # The check sent the checkouts; web's sidecar ejected payments-v1-0 and told the control plane.
        text = stack.cli("status").stdout
        assert "payments-v1-0 ejected by web-v1-0" in text, text
        report = json.loads(stack.cli("status", "--json").stdout)
        by_name = {i["instance"]: i for i in report["instances"]}
        assert by_name["payments-v1-0"]["ejected"] and by_name["payments-v1-0"]["ejected_by"] == ["web-v1-0"]
        assert not by_name["payments-v1-1"]["ejected"]
