"""Lesson 08 end to end: an API outside the mesh — ALLOW_ANY, REGISTRY_ONLY, a ServiceEntry, retries.

`rates` runs under lesson.yaml's `outside:` with no sidecar; pricing calls
it as rates.example.com, which the runner resolves for the sidecars
(--resolve). Every step's `lesson check` must pass; beyond the checks,
step 2 asks what a learner would: did the refusal happen at pricing's own
sidecar, with flag BH, and did rates hear nothing?
"""

import json

import pytest

from tests.support.stack import REPO, running_stack

LESSON = REPO / "lessons" / "08-ingress-egress"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(LESSON, tmp_path_factory.mktemp("lesson08") / "home") as stack:
        yield stack


def rates_requests(stack) -> int:
    log = stack.home / "logs" / "rates.log"
    return log.read_text().count('"GET /rates')


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_lesson_check_passes_at_every_step(stack, step):
    r = stack.cli("lesson", "step", "08", str(step))
    assert r.returncode == 0, r.stdout + r.stderr
    before = rates_requests(stack)
    r = stack.cli("lesson", "check", "08")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"step {step}" in r.stdout and "PASS" in r.stdout
    if step == 2:
        # REGISTRY_ONLY: the caller's sidecar refused; the external API never saw a request.
        assert rates_requests(stack) == before
        lines = [json.loads(line.split("minimesh.access: ", 1)[1])
                 for line in (stack.home / "logs" / "pricing-v1-0.sidecar.log").read_text().splitlines()
                 if "minimesh.access: " in line]
        refused = [x for x in lines if x.get("authority") == "rates.example.com" and x["status"] == 502]
        assert refused and all("BH" in str(x.get("flags")) for x in refused), refused[-1:]
    else:
        assert rates_requests(stack) > before
