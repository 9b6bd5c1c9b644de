"""The doctor's verdicts and the per-user home, as data in and data out (issue 18)."""

from pathlib import Path

import pytest

from minimesh.runner.doctor import Finding, python_version, report, stack_health
from minimesh.runner.state import default_home

NOW = 1_000_000.0


def proxy(node, acked=3, nack=None, identity=True, not_after=NOW + 3600):
    return {"node": node, "acked_config_version": acked, "nack_error": nack,
            "identity": f"spiffe://cluster.local/ns/default/sa/{node}" if identity else None,
            "certificate": {"serial": "0a", "not_after": not_after} if identity else None}


@pytest.mark.parametrize("proxies, acks_ok, certs_ok, words", [
    ([proxy("web"), proxy("gateway")], True, True, "every proxy (2) ACKed config v3"),
    ([proxy("web", acked=2), proxy("gateway")], False, True, "web has v2"),
    ([proxy("web", nack="bad route"), proxy("gateway")], False, True, "web NACKed: bad route"),
    ([proxy("web", not_after=NOW - 1), proxy("plain", identity=False)], True, False, "expired certificates: web"),
])
def test_stack_health(proxies, acks_ok, certs_ok, words):
    acks, certs = stack_health({"config_version": 3, "proxies": proxies}, NOW)
    assert (acks.ok, certs.ok) == (acks_ok, certs_ok)
    assert words in acks.what + certs.what
    assert all(f.fix for f in (acks, certs) if not f.ok)  # every ✗ says how to fix it


def test_python_version():
    assert python_version((3, 11, 4)).ok and not python_version((3, 10, 12)).ok


def test_report_exit_rule_and_fix_lines():
    text, ok = report([Finding(True, "a"), Finding(None, "b", "do b"), Finding(False, "c", "do c")])
    assert not ok and "✓ a\n‼ b\n    fix: do b\n✗ c\n    fix: do c" in text
    assert report([Finding(True, "a"), Finding(None, "b", "do b")])[1]  # warnings never fail


@pytest.mark.parametrize("env, expected", [
    ({"HOME": "/home/ann"}, "/home/ann/.local/state/minimesh"),
    ({"HOME": "/home/ann", "XDG_STATE_HOME": "/var/ann"}, "/var/ann/minimesh"),
    ({"HOME": "/home/ann", "XDG_STATE_HOME": "relative"}, "/home/ann/.local/state/minimesh"),
])
def test_default_home_is_per_user(env, expected):
    assert default_home(env) == Path(expected)


def test_compose_mounts_the_same_default_home():
    # The compose files write the operator's credentials where the CLI will look for them.
    from minimesh.runner.compose import HOST_CREDENTIALS

    assert HOST_CREDENTIALS == "${MINIMESH_HOME:-~/.local/state/minimesh}/credentials"
    assert str(default_home({"HOME": "~"})) == "~/.local/state/minimesh"
