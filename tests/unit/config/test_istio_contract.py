"""The contract: everything minimesh accepts is real Istio (DESIGN.md)."""

import pytest
import yaml

from tests.istio_schema import validate_istio

from .cases import ACCEPTED
from .rejected_cases import REJECTED


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_every_accepted_manifest_is_valid_istio(name):
    assert validate_istio(yaml.safe_load(ACCEPTED[name])) == []


@pytest.mark.parametrize("name", sorted(n for n in REJECTED if REJECTED[n].crd is not None))
def test_rejections_agree_with_istios_schema(name):
    # A field minimesh calls "supported by Istio, not by minimesh" must really
    # be in Istio's schema; a typo minimesh calls unknown must be refused there too.
    case = REJECTED[name]
    problems = validate_istio(yaml.safe_load(case.text))
    assert (problems == []) is case.crd, problems


@pytest.mark.parametrize("doc, fragment", [
    ({"spec": {"hosts": ["a"], "http": [{"retriez": {}, "route": [{"destination": {"host": "a"}}]}]}},
     "spec.http[0].retriez: unknown field"),
    ({"spec": {"hosts": ["a"], "http": [{"timeout": "0.1ms", "route": [{"destination": {"host": "a"}}]}]}},
     "greater than 1ms"),
    ({"spec": {"hosts": "a"}}, "is not of type 'array'"),
    ({"spec": {"hosts": ["a"]}, "extra": 1}, "extra: unknown field"),
])
def test_validate_istio_can_fail(doc, fragment):
    doc = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "x"}, **doc}
    assert any(fragment in p for p in validate_istio(doc)), validate_istio(doc)
