"""Rollout bookkeeping: which config each proxy runs, when a rollout is done, how long it took."""

import pytest

from minimesh.control.rollout import RolloutBook, Take, progress, take_after
from minimesh.control.snapshot import config_version_of, snapshot_version


@pytest.mark.parametrize("version, config", [
    (snapshot_version(7, "ab12cd34", 3), 7),
    ("0.ab.0", 0),
    ("", None),
    ("bogus", None),
])
def test_config_version_of_reads_back_what_snapshot_version_wrote(version, config):
    assert config_version_of(version) == config


@pytest.mark.parametrize("events, expected", [
    # (config version, error, time)
    ([(3, None, 1.0)], Take(3, 1.0)),
    # a registry change re-sends config 3: the first ACK's time stands
    ([(3, None, 1.0), (3, None, 2.0)], Take(3, 1.0)),
    ([(3, None, 1.0), (4, None, 2.0)], Take(4, 2.0)),
    ([(3, None, 1.0), (4, "bad", 2.0)], Take(3, 1.0, 4, "bad")),
    # a later good config clears the refusal
    ([(3, None, 1.0), (4, "bad", 2.0), (5, None, 3.0)], Take(5, 3.0)),
    # a registry-only change of the old config does not: 4 is still refused
    ([(3, None, 1.0), (4, "bad", 2.0), (3, None, 3.0)], Take(3, 1.0, 4, "bad")),
])
def test_take_after(events, expected):
    take = Take()
    for version, error, now in events:
        take = take_after(take, version, error, now)
    assert take == expected


def test_progress_waits_for_every_node_and_measures_from_the_commit():
    takes = {"a": Take(5, 10.02), "b": Take(4, 3.0)}
    pending = progress(5, ["a", "b"], takes, committed_at=10.0)
    assert [p.state for p in pending.proxies] == ["acked", "pending"]
    assert not pending.done and pending.convergence_s is None

    takes["b"] = Take(5, 10.045)
    done = progress(5, ["b", "a"], takes, committed_at=10.0)
    assert done.converged and not done.failed
    assert done.convergence_s == pytest.approx(0.045)
    assert [p.node for p in done.proxies] == ["a", "b"]


def test_a_nack_fails_the_rollout_at_once_with_the_reason():
    r = progress(5, ["a", "b"], {"a": Take(5, 1.0), "b": Take(4, 0.5, 5, "regex does not compile")}, 0.9)
    assert r.failed and r.done and not r.converged
    assert r.to_json()["proxies"][1] == {"node": "b", "state": "nacked", "acked_config_version": 4,
                                         "nack_error": "regex does not compile"}


def test_a_newer_config_counts_for_an_older_rollout():
    assert progress(5, ["a"], {"a": Take(6, 2.0)}, 1.0).converged


def test_unknown_commit_time_converges_without_a_time():
    r = progress(5, ["a"], {"a": Take(5, 2.0)}, None)
    assert r.converged and r.convergence_s is None


def test_book_records_forgets_and_keeps_recent_commit_times():
    now = [0.0]
    book = RolloutBook(clock=lambda: now[0])
    book.committed(1)
    now[0] = 0.25
    book.record("a", 1, None)
    book.record("x", None, None)  # a version this control plane did not write: ignored
    assert book.acked_config_version("a") == 1 and book.acked_config_version("x") is None
    assert book.progress(1, ["a"]).convergence_s == pytest.approx(0.25)
    book.forget("a")
    assert book.progress(1, ["a"]).proxies[0].state == "pending"
    for v in range(2, 200):
        book.committed(v)
    assert 1 not in book.committed_at and 199 in book.committed_at
