"""Lesson 02 end to end: payments fails 30 %; retries hide it, at a price.

The numbers are the foundation issue's: with retries off about 70 % of 500
checkouts succeed, with the step's retry VirtualService at least 99.5 %.
payments' failure dice are seeded per instance (demo-services/shop.py), so a
run tells the same story each time.
"""

import asyncio

import pytest

from minimesh.lesson.steps import Send
from minimesh.lesson.traffic import send_traffic
from tests.support.stack import REPO, running_stack

LESSON = REPO / "lessons" / "02-retries"
CHECKOUT = Send(method="POST", path="/api/checkout", count=500, concurrency=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(LESSON, tmp_path_factory.mktemp("lesson02") / "home") as stack:
        yield stack


def checkout_success(stack) -> float:
    return asyncio.run(send_traffic(stack.status()["gateway_url"], CHECKOUT)).success_rate


def test_check_fails_with_a_hint_before_the_step_is_applied(stack):
    r = stack.cli("lesson", "check", "02", "--step", "1")
    assert r.returncode == 1
    assert "virtualservice/payments" in r.stdout and "not applied" in r.stdout
    assert "minimesh apply" in r.stdout and "payments-no-retries.yaml" in r.stdout


def test_without_retries_about_70_percent_of_checkouts_succeed(stack):
    assert stack.cli("lesson", "step", "02", "1").returncode == 0
    rate = checkout_success(stack)
    assert 0.65 <= rate <= 0.75, f"{rate:.1%} of 500 checkouts succeeded"


def test_with_retries_at_least_99_5_percent_succeed(stack):
    assert stack.cli("lesson", "step", "02", "2").returncode == 0
    rate = checkout_success(stack)
    assert rate >= 0.995, f"{rate:.1%} of 500 checkouts succeeded"


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_lesson_check_passes_at_every_step(stack, step):
    r = stack.cli("lesson", "step", "02", str(step))
    assert r.returncode == 0, r.stdout + r.stderr
    r = stack.cli("lesson", "check", "02")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"step {step}" in r.stdout and "PASS" in r.stdout
