"""Hop-by-hop stripping (RFC 9110 §7.6.1), forwarding headers, and which service a Host names."""

import pytest
from multidict import CIMultiDict

from minimesh.proxy.headers import add_forwarding, strip_hop_by_hop
from minimesh.proxy.outbound.stack import service_of


@pytest.mark.parametrize("given,kept", [
    ({"Host": "a", "Accept": "*/*"}, {"host", "accept"}),
    ({"Connection": "keep-alive", "Keep-Alive": "timeout=5", "Accept": "*/*"}, {"accept"}),
    ({"Transfer-Encoding": "chunked", "TE": "trailers", "Trailer": "x", "Upgrade": "h2c"}, set()),
    ({"Proxy-Connection": "keep-alive", "Proxy-Authorization": "Basic eA==", "Proxy-Authenticate": "x"}, set()),
    # fields the Connection header names are hop-by-hop too, case-insensitively, with odd spacing
    ({"Connection": "close, X-Secret ,x-other", "X-Secret": "1", "X-Other": "2", "X-Kept": "3"}, {"x-kept"}),
    ({"connection": "X-A", "Connection": "X-B", "x-a": "1", "x-b": "2", "x-c": "3"}, {"x-c"}),
    ({"Connection": ",,", "X-Kept": "1"}, {"x-kept"}),
])
def test_strip_hop_by_hop(given, kept):
    headers = CIMultiDict(list(given.items()))
    out = strip_hop_by_hop(headers)
    assert {k.lower() for k in out} == kept
    assert headers == CIMultiDict(list(given.items()))  # the input is not modified


def test_strip_keeps_repeated_end_to_end_fields_in_order():
    headers = CIMultiDict([("Set-Cookie", "a=1"), ("Connection", "close"), ("Set-Cookie", "b=2")])
    assert strip_hop_by_hop(headers).getall("set-cookie") == ["a=1", "b=2"]


@pytest.mark.parametrize("before,client,after", [
    (None, "10.0.0.1", "10.0.0.1"),
    ("1.2.3.4", "10.0.0.1", "1.2.3.4, 10.0.0.1"),
    ("1.2.3.4", "", "1.2.3.4"),
    (None, "", None),
])
def test_add_forwarding_appends_the_client(before, client, after):
    headers = CIMultiDict({"x-forwarded-for": before} if before else {})
    add_forwarding(headers, client)
    assert headers.get("x-forwarded-for") == after


def test_add_forwarding_keeps_an_existing_request_id_and_makes_one_when_missing():
    kept = CIMultiDict({"X-Request-Id": "abc"})
    add_forwarding(kept, "")
    assert kept.getall("x-request-id") == ["abc"]
    made, other = CIMultiDict(), CIMultiDict()
    add_forwarding(made, "")
    add_forwarding(other, "")
    assert len(made["x-request-id"]) == 36 and made["x-request-id"] != other["x-request-id"]


@pytest.mark.parametrize("authority,service", [
    ("catalog", "catalog"),
    ("catalog:80", "catalog"),
    ("catalog:8080", "catalog"),
    ("CATALOG", "catalog"),
    ("catalog.default.svc.cluster.local", "catalog"),
    ("catalog.default.svc.cluster.local:80", "catalog"),
    ("catalog.default", "catalog.default"),  # not expanded, as in Istio
    ("127.0.0.1:9000", "127.0.0.1"),
    ("example.com", "example.com"),
])
def test_service_of(authority, service):
    assert service_of(authority) == service
