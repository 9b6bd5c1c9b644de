"""The TUI's canary split reads relative weights as Istio does: weight / sum, in percent."""

import pytest

from tui.actions import current_split, shift_weights


def resources(w1, w2):
    dr = {"kind": "DestinationRule", "metadata": {"name": "pricing"},
          "spec": {"host": "pricing", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                  {"name": "v2", "labels": {"version": "v2"}}]}}
    vs = {"kind": "VirtualService", "metadata": {"name": "pricing"},
          "spec": {"hosts": ["pricing"], "http": [{"route": [
              {"destination": {"host": "pricing", "subset": "v1"}, "weight": w1},
              {"destination": {"host": "pricing", "subset": "v2"}, "weight": w2}]}]}}
    return [dr, vs]


@pytest.mark.parametrize("w1, w2, shown", [(90, 10, (90, 10)), (1, 3, (25, 75)), (2, 1, (67, 33)), (0, 0, (0, 0))])
def test_relative_weights_show_as_percent(w1, w2, shown):
    split = current_split(resources(w1, w2), "pricing")
    assert tuple(w for _, w in split.weights) == shown


def test_a_shift_from_relative_weights_writes_percent():
    vs, split = shift_weights(resources(1, 3), "pricing", 10)
    assert [d["weight"] for d in vs["spec"]["http"][0]["route"]] == [15, 85]
