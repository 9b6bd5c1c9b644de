"""pick_destination: the weighted split behind canaries, checked with seeded dice."""

import random
from collections import Counter

import pytest

from minimesh.config import Destination, HTTPRouteDestination
from minimesh.proxy.outbound.split import pick_destination

DRAWS = 10_000


def split(*weights):
    return tuple(HTTPRouteDestination(Destination("pricing", f"v{i + 1}"), w) for i, w in enumerate(weights))


def shares(destinations, seed):
    rand = random.Random(seed)
    counts = Counter(pick_destination(destinations, rand).destination.subset for _ in range(DRAWS))
    return {k: n / DRAWS for k, n in counts.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("weights", [(90, 10), (50, 50), (20, 30, 50), (1, 99), (34, 33, 33),
                                     (1, 3), (2, 2, 4), (700, 300)])  # relative, as on Istio: weight / sum
def test_each_destination_gets_its_weight(weights, seed):
    got = shares(split(*weights), seed)
    for i, w in enumerate(weights):
        expected = w / sum(weights)
        # 4.5 standard deviations of a binomial share over 10k draws: fails only on a real bias.
        margin = 4.5 * (expected * (1 - expected) / DRAWS) ** 0.5 + 1e-9
        assert abs(got.get(f"v{i + 1}", 0) - expected) <= margin, (weights, got)


@pytest.mark.parametrize("weights", [(0, 100), (100, 0), (0, 50, 0, 50), (0, 0, 100)])
def test_zero_weight_never_chosen(weights):
    got = shares(split(*weights), seed=7)
    for i, w in enumerate(weights):
        if w == 0:
            assert f"v{i + 1}" not in got


def test_single_destination_always_chosen():
    only = split(100)
    assert all(pick_destination(only, random.Random(s)) is only[0] for s in range(100))


def test_all_weights_zero_picks_nothing():
    assert pick_destination(split(0, 0), random.Random(1)) is None


class EdgeOfRange(random.Random):
    """Dice that always roll the largest value below 1: the last positive weight must win."""

    def random(self):
        return 1 - 2 ** -53


@pytest.mark.parametrize("weights,expected", [((50, 50), "v2"), ((100, 0), "v1"), ((30, 70, 0), "v2")])
def test_top_of_the_range_lands_on_the_last_positive_weight(weights, expected):
    assert pick_destination(split(*weights), EdgeOfRange()).destination.subset == expected
