"""`apply --wait`'s failure line names every proxy that did not take the version, and why."""

from minimesh.runner.rollout import RolloutResult, behind_message


def test_behind_message_names_nacks_and_stragglers():
    answer = {"config_version": 7, "converged": False, "failed": True, "proxies": [
        {"node": "web-v1-0", "state": "acked", "acked_config_version": 7, "nack_error": None},
        {"node": "pricing-v1-0", "state": "nacked", "acked_config_version": 6, "nack_error": "bad regex"},
        {"node": "gateway", "state": "pending", "acked_config_version": None, "nack_error": None},
    ]}
    line = behind_message(answer, 2.0)
    assert "config version 7" in line
    assert "pricing-v1-0 refused it (NACK: bad regex)" in line
    assert "no ACK within 2s from gateway (runs config none)" in line
    assert "web-v1-0" not in line


def test_describe_prefers_the_control_planes_measure():
    assert "converged in 42 ms" in RolloutResult(3, 11, 0.042, 0.3).describe()
    assert "11/11 proxies" in RolloutResult(3, 11, 0.042, 0.3).describe()
    assert "converged in 300 ms" in RolloutResult(3, 11, None, 0.3).describe()
    assert "(300 ms from apply to the last ACK, seen from here)" in RolloutResult(3, 11, 0.042, 0.3).describe()


def test_describe_an_unchanged_apply_without_an_old_time():
    assert RolloutResult(3, 11, 2.5, 0.01).describe(changed=False) == "config version 3 unchanged: all 11 proxies run it"
