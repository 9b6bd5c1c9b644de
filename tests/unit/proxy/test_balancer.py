"""pick_endpoint: ROUND_ROBIN, RANDOM and LEAST_REQUEST (power of two choices), seeded."""

import random
from collections import Counter
from itertools import combinations

import pytest

from minimesh.proxy.outbound.balancer import pick_endpoint
from minimesh.proxy.snapshot import Endpoint

EPS = tuple(Endpoint(f"catalog-{i}", f"127.0.0.1:{7000 + i}") for i in range(3))


@pytest.mark.parametrize("n", [2, 3])
def test_round_robin_cycles_exactly(n):
    endpoints = EPS[:n]
    picks = [pick_endpoint("ROUND_ROBIN", endpoints, in_flight={}, turn=t).instance for t in range(3 * n)]
    assert picks == [e.instance for e in endpoints] * 3


@pytest.mark.parametrize("policy", ["ROUND_ROBIN", "RANDOM", "LEAST_REQUEST"])
def test_single_endpoint_always_chosen(policy):
    got = {pick_endpoint(policy, EPS[:1], in_flight={EPS[0].address: 9}, turn=t, rand=random.Random(t)).instance
           for t in range(20)}
    assert got == {"catalog-0"}


@pytest.mark.parametrize("seed", [1, 2])
def test_random_spreads_evenly(seed):
    rand = random.Random(seed)
    draws = 9_000
    counts = Counter(pick_endpoint("RANDOM", EPS, in_flight={}, turn=0, rand=rand).instance for _ in range(draws))
    margin = 4.5 * (1 / 3 * 2 / 3 / draws) ** 0.5
    for e in EPS:
        assert abs(counts[e.instance] / draws - 1 / 3) <= margin, counts


@pytest.mark.parametrize("seed", range(5))
def test_least_request_never_picks_the_more_loaded_of_its_two_samples(seed):
    """Reproduce the two samples with the same seed, then check the choice."""
    loads = {EPS[0].address: 0, EPS[1].address: 3, EPS[2].address: 7}
    for draw in range(200):
        sampler = random.Random(seed * 1000 + draw)
        a, b = sampler.sample(EPS, 2)
        picked = pick_endpoint("LEAST_REQUEST", EPS, in_flight=loads, turn=0, rand=random.Random(seed * 1000 + draw))
        assert picked in (a, b)
        assert loads[picked.address] == min(loads[a.address], loads[b.address])


def test_least_request_avoids_the_busy_endpoint_when_the_others_are_idle():
    # With one busy endpoint and two idle ones, every pair holds an idle one,
    # so the busy one can never win; the two idle ones share the traffic.
    rand = random.Random(42)
    loads = {EPS[2].address: 5}
    counts = Counter(pick_endpoint("LEAST_REQUEST", EPS, in_flight=loads, turn=0, rand=rand).instance
                     for _ in range(3000))
    assert counts["catalog-2"] == 0
    assert 1300 <= counts["catalog-0"] <= 1700, counts


def test_least_request_never_picks_the_strictly_most_loaded_of_three():
    # Property over every load pattern of 3 endpoints: the most loaded endpoint
    # (strictly) is never picked, because any pair containing it has a lighter partner.
    for loads in [(0, 1, 2), (2, 0, 1), (5, 5, 9), (1, 0, 0)]:
        in_flight = {e.address: n for e, n in zip(EPS, loads)}
        heaviest = max(range(3), key=lambda i: loads[i])
        rand = random.Random(sum(loads))
        picks = {pick_endpoint("LEAST_REQUEST", EPS, in_flight=in_flight, turn=0, rand=rand).instance
                 for _ in range(300)}
        assert f"catalog-{heaviest}" not in picks, (loads, picks)
        # ...and both lighter endpoints do win some comparisons.
        assert picks == {f"catalog-{i}" for i in range(3) if i != heaviest}, (loads, picks)


def test_least_request_ties_are_broken_by_the_sample_order():
    # Equal loads: each endpoint is picked about a third of the time.
    rand = random.Random(5)
    counts = Counter(pick_endpoint("LEAST_REQUEST", EPS, in_flight={}, turn=0, rand=rand).instance
                     for _ in range(3000))
    assert all(850 <= counts[e.instance] <= 1150 for e in EPS), counts


def test_every_pair_is_possible():
    # P2C may sample the two busiest: then the less busy of those two wins, not the idle third.
    loads = {EPS[0].address: 0, EPS[1].address: 4, EPS[2].address: 8}
    seen = set()
    for s in range(500):
        a, b = random.Random(s).sample(EPS, 2)
        seen.add(frozenset((a.instance, b.instance)))
        picked = pick_endpoint("LEAST_REQUEST", EPS, in_flight=loads, turn=0, rand=random.Random(s))
        if {a.instance, b.instance} == {"catalog-1", "catalog-2"}:
            assert picked.instance == "catalog-1"
    assert seen == {frozenset(p) for p in combinations([e.instance for e in EPS], 2)}
