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


def test_the_locust_run_per_step_writes_csv_and_the_table(stack, tmp_path):
    # `make lesson-load` runs every step for 15 s; one short step shows the shape: the step is
    # put in force, locust's CSV is kept under the prefix given, and the table is read from it.
    prefix, results = tmp_path / "run", tmp_path / "RESULTS.md"
    r = stack.cli("load", "07", "--each-step", "--step", "3", "-u", "5", "-t", "4s", "--row", "/api/checkout",
                  "--row", "Aggregated", "--csv", str(prefix), "--results", str(results), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "run-step3_stats.csv").is_file() and "== step 3:" in r.stdout
    table = results.read_text()
    assert "Made by `minimesh load 07-resilience --each-step`" in table
    assert "| step | requests to | requests | failed | p50 | p95 | load avg |" in table
    [checkouts] = [line for line in table.splitlines() if line.startswith("| 3 · outlier-detection | /api/checkout |")]
    [_, _, _, requests, failed, p50, p95, load, _] = checkouts.split("|")
    assert int(requests) > 0 and failed.strip().endswith("%") and p50.strip().endswith("ms"), checkouts
    assert "| 3 · outlier-detection | Aggregated |" in table and "| 1 ·" not in table
