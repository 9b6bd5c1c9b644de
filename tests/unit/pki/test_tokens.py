"""Join tokens: bound to one service, checked in constant time, secret kept 0600."""

import os
import stat

import pytest

from minimesh.pki.tokens import issue_token, join_token, load_or_create_secret, token_is_valid
from minimesh.pki.ttl import parse_cert_ttl
from minimesh.errors import UserError


@pytest.fixture
def secret(tmp_path):
    return load_or_create_secret(tmp_path)


@pytest.mark.parametrize("service,token_service,ok", [
    ("web", "web", True),
    ("web", "payments", False),
    ("web", "web ", False),
    ("payments", "payments", True),
])
def test_a_token_is_valid_for_its_own_service_only(secret, service, token_service, ok):
    assert token_is_valid(secret, service, join_token(secret, token_service)) is ok


@pytest.mark.parametrize("token", [None, "", "mmjt.", "mmjt." + "0" * 40, "Bearer x"])
def test_missing_or_forged_tokens_are_not_valid(secret, token):
    assert not token_is_valid(secret, "web", token)


def test_another_secret_makes_other_tokens(tmp_path, secret):
    other = load_or_create_secret(tmp_path / "other")
    assert join_token(other, "web") != join_token(secret, "web")
    assert not token_is_valid(other, "web", join_token(secret, "web"))


def test_the_secret_is_made_once_and_private(tmp_path):
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first
    assert stat.S_IMODE(os.stat(tmp_path / "join-secret").st_mode) == 0o600
    # `minimesh token` reads <home>/control/join-secret, the control plane's own.
    home = tmp_path / "home"
    assert issue_token(home, "web") == join_token(load_or_create_secret(home / "control"), "web")


@pytest.mark.parametrize("text,seconds", [("24h", 86400.0), ("20s", 20.0), ("1h30m", 5400.0)])
def test_cert_ttl(text, seconds):
    assert parse_cert_ttl(text) == seconds


@pytest.mark.parametrize("text", ["1s", "soon", "-5s"])
def test_bad_cert_ttl_is_one_clear_line(text):
    with pytest.raises(UserError, match="cert-ttl"):
        parse_cert_ttl(text)
