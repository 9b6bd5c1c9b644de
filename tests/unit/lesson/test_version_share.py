"""The `version_share` expectation: the observed split of a canary, and where a header route goes."""

import pytest

from minimesh.lesson.check import judge
from minimesh.lesson.steps import parse_steps
from minimesh.lesson.traffic import Answer, Traffic


def pricing(version):
    return Answer(200, 1.0, {"service": "pricing", "version": version, "instance": f"pricing-{version}-0"})


def web_via(version):
    return Answer(200, 1.0, {"service": "web", "version": "v1", "instance": "web-v1-0", "upstreams": [
        {"service": "catalog", "version": "v1", "instance": "catalog-v1-0"},
        {"service": "pricing", "version": version, "instance": f"pricing-{version}-0"}]})


@pytest.mark.parametrize("answers, args, ok, detail", [
    ([pricing("v1")] * 90 + [pricing("v2")] * 10, {"min": 0.08, "max": 0.12}, True, "10.0% of 100 (v1: 90, v2: 10)"),
    ([pricing("v1")] * 80 + [pricing("v2")] * 20, {"min": 0.08, "max": 0.12}, False, "20.0% of 100"),
    ([pricing("v2")] * 5, {"min": 1.0}, True, "100.0% of 5"),
    ([pricing("v1")] * 5, {"max": 0.0}, True, "0.0% of 5"),
    # through the shop: web names the pricing version it used among its upstreams
    ([web_via("v2")] * 3 + [web_via("v1")], {"min": 0.7, "max": 0.8}, True, "75.0% of 4"),
    # failures that name no version do not count either way...
    ([pricing("v2"), Answer(502, 1.0, {"error": "x"}), Answer(0, 1.0, error="reset")], {"min": 1.0}, True, "100.0% of 1"),
    # ...but with no answer at all, nothing is shown: the check fails
    ([Answer(0, 1.0, error="refused")], {"max": 0.0}, False, "no answer named a version of pricing"),
])
def test_version_share(answers, args, ok, detail):
    v = judge("version_share", {"service": "pricing", "version": "v2", **args}, Traffic(answers), None)
    assert v.ok is ok
    assert detail in v.detail
    assert "pricing v2 serves" in v.what


def test_version_share_is_a_known_expectation_with_its_keys(tmp_path):
    steps = parse_steps([{"name": "s", "checks": [{"send": {"host": "pricing", "headers": {"end-user": "tester"}},
                                                     "expect": {"version_share": {"service": "pricing", "version": "v2",
                                                                                  "min": 1.0}}}]}],
                        lesson_dir=tmp_path, source="lesson.yaml")
    assert steps[0].checks[0].expect == (("version_share", {"service": "pricing", "version": "v2", "min": 1.0}),)
    assert steps[0].checks[0].send.headers == (("end-user", "tester"),)
    with pytest.raises(Exception, match="unknown field"):
        parse_steps([{"name": "s", "checks": [{"expect": {"version_share": {"service": "pricing", "weight": 1}}}]}],
                    lesson_dir=tmp_path, source="lesson.yaml")
