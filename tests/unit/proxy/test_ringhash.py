"""Consistent hashing and slow start (ringhash.py): pure functions, seeded data."""

import random
from collections import Counter

from multidict import CIMultiDict

from minimesh.config import ConsistentHash
from minimesh.proxy.outbound.ringhash import build_ring, hash64, hash_key, ring_pick, warmup_factor

ADDRESSES = tuple(f"127.0.0.1:{7000 + i}" for i in range(3))


def test_same_key_same_endpoint_and_a_fair_spread():
    rand = random.Random(5)
    keys = [f"user-{rand.random()}" for _ in range(3000)]
    picks = {k: ring_pick(ADDRESSES, 1024, hash64(k)) for k in keys}
    assert all(ring_pick(ADDRESSES, 1024, hash64(k)) == picks[k] for k in keys)
    shares = Counter(picks.values())
    assert all(800 <= n <= 1200 for n in shares.values()), shares  # 1024 virtual nodes: within ~20 %


def test_an_endpoint_leaving_moves_only_its_own_keys():
    rand = random.Random(6)
    keys = [f"k{rand.random()}" for _ in range(3000)]
    before = {k: ring_pick(ADDRESSES, 1024, hash64(k)) for k in keys}
    after = {k: ring_pick(ADDRESSES[:2], 1024, hash64(k)) for k in keys}
    # The departed endpoint's keys must move; most others stay where they were (with `hash % N`
    # two thirds would move). Envoy resizes each endpoint's share of the ring to keep
    # minimumRingSize, so a few keys of the others move too.
    stayed = [k for k in keys if before[k] != ADDRESSES[2] and before[k] == after[k]]
    others = [k for k in keys if before[k] != ADDRESSES[2]]
    assert len(stayed) >= 0.75 * len(others), (len(stayed), len(others))


def test_ring_size_follows_minimum_ring_size():
    points, owners = build_ring(ADDRESSES, 64)
    assert len(points) == 66 and points == tuple(sorted(points)) and set(owners) == set(ADDRESSES)


def test_hash_keys():
    headers = CIMultiDict({"x-user": "alice", "cookie": "a=1; session=s42"})
    assert hash_key(ConsistentHash(http_header_name="x-user"), "/", headers, "") == ("alice", None)
    assert hash_key(ConsistentHash(http_query_parameter_name="u"), "/p?u=bob&x=1", headers, "") == ("bob", None)
    assert hash_key(ConsistentHash(use_source_ip=True), "/", headers, "10.0.0.7:5555") == ("10.0.0.7", None)
    assert hash_key(ConsistentHash(http_cookie="session"), "/", headers, "") == ("s42", None)
    assert hash_key(ConsistentHash(http_cookie="other"), "/", headers, "") == (None, None)  # no ttl: no cookie made
    value, set_cookie = hash_key(ConsistentHash(http_cookie="other", cookie_ttl=60, cookie_path="/"), "/", headers, "")
    assert value and set_cookie == f"other={value}; Path=/; Max-Age=60; HttpOnly"


def test_warmup_factor_grows_from_min_percent_to_full():
    assert warmup_factor(0, 10, 10, 1.0) == 0.1
    assert warmup_factor(5, 10, 10, 1.0) == 0.5
    assert warmup_factor(10, 10, 10, 1.0) == 1.0
    assert warmup_factor(5, 10, 10, 2.0) > 0.5  # more aggression: faster at first (Envoy's ^(1/aggression))
