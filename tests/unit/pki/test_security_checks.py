"""Lesson 04's check verdicts (pure) and how the sniffer names what it sees."""

import pytest

from minimesh.lesson.security_checks import judge_security
from minimesh.runner.sniff import describe_chunk


@pytest.mark.parametrize("data,kind,text", [
    (b"GET /items HTTP/1.1\r\nHost: catalog\r\n\r\n", "plaintext", "GET /items HTTP/1.1 ⏎ Host: catalog"),
    (bytes([0x16, 0x03, 0x01, 0x00, 0xdc, 0x01]), "tls", "TLS handshake: 16 03 01 00 dc 01"),
    (bytes([0x17, 0x03, 0x03, 0x01, 0x2c]) + b"\x00" * 40, "tls", "TLS application data (encrypted): 17 03 03"),
    (b"\x16not tls", "plaintext", ".not tls"),
])
def test_describe_chunk(data, kind, text):
    got_kind, got_text = describe_chunk(data)
    assert got_kind == kind and text in got_text


@pytest.mark.parametrize("kind,args,seen,ok", [
    ("wire", {"service": "catalog", "shows": "tls"}, {"tls": 50, "plaintext": 0}, True),
    ("wire", {"service": "catalog", "shows": "tls"}, {"tls": 50, "plaintext": 1}, False),
    ("wire", {"service": "catalog", "shows": "tls"}, {"tls": 0, "plaintext": 0}, False),  # saw nothing: no proof
    ("wire", {"service": "catalog", "shows": "plaintext"}, {"tls": 0, "plaintext": 9}, True),
    ("rogue_client", {"service": "catalog", "expect": "refused"}, {"served": 0, "refused": 3}, True),
    ("rogue_client", {"service": "catalog", "expect": "refused"}, {"served": 1, "refused": 2}, False),
    ("rogue_client", {"service": "catalog", "expect": "served"}, {"served": 0, "refused": 0}, False),
    ("rotation", {"min_serials": 2}, {"web": 2, "gateway": 3}, True),
    ("rotation", {"min_serials": 2}, {"web": 2, "gateway": 1}, False),
    ("rotation", {"min_serials": 2}, {}, False),
    ("join_token", {"service": "web"}, {"statuses": [403, 403]}, True),
    ("join_token", {"service": "web"}, {"statuses": [403, 200]}, False),
])
def test_judge_security(kind, args, seen, ok):
    assert judge_security(kind, args, seen).ok is ok
