"""The last line of `minimesh lesson check` (issue 18, defect 4): hints are pointed at only when there are some."""

from minimesh.lesson.commands import outcome
from minimesh.lesson.verdict import Verdict


def test_pass():
    assert outcome([Verdict(True, "a")]) == "PASS"


def test_a_failure_with_a_hint_points_at_it():
    assert "see the hints above" in outcome([Verdict(False, "a", "not applied", "run: minimesh apply a.yaml")])


def test_a_failure_without_hints_does_not_promise_any():
    line = outcome([Verdict(True, "a"), Verdict(False, "success rate at least 99%", "measured 70%")])
    assert "hints" not in line and "1 of 2 expectations not met" in line
