"""Admission of registrations: every bad field is a 400 that names it; good ones pass untouched."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minimesh.control.registry import InvalidRegistration, parse_registration

GOOD = {"service": "catalog", "version": "v1", "instance": "catalog-v1-0", "kind": "sidecar",
        "labels": {"track": "canary", "app.kubernetes.io/name": "catalog"},
        "identity": "spiffe://cluster.local/ns/default/sa/catalog",
        "addresses": {"app": "127.0.0.1:8080", "inbound": "[::1]:15006", "outbound": None,
                      "admin": "catalog-0.shop.local:15000"}}


def test_a_good_registration_passes():
    reg = parse_registration(GOOD)
    assert reg.addresses["inbound"] == "[::1]:15006" and reg.labels["track"] == "canary"


@pytest.mark.parametrize("change,field", [
    ({"addresses": {"inbound": "not-an-address"}}, "addresses.inbound"),
    ({"addresses": {"inbound": "127.0.0.1:0"}}, "addresses.inbound"),
    ({"addresses": {"inbound": "127.0.0.1:65536"}}, "addresses.inbound"),
    ({"addresses": {"inbound": "127.0.0.1:http"}}, "addresses.inbound"),
    ({"addresses": {"inbound": "bad_host:15006"}}, "addresses.inbound"),
    ({"addresses": {"inbound": ":15006"}}, "addresses.inbound"),
    ({"addresses": {"admin": 15000}}, "addresses.admin"),
    ({"addresses": {"sideways": "127.0.0.1:1"}}, "address role"),
    ({"service": "Catalog"}, "service"),
    ({"service": "catalog_v1"}, "service"),
    ({"service": "-catalog"}, "service"),
    ({"service": "c" * 64}, "service"),
    ({"version": "v1.0"}, "version"),
    ({"instance": "catalog/../x"}, "instance"),
    ({"instance": "a" * 254}, "instance"),
    ({"labels": {"bad key!": "x"}}, "labels key"),
    ({"labels": {"track": "x" * 64}}, "labels.track"),
    ({"labels": {"track": 1}}, "labels.track"),
    ({"labels": {f"k{i}": "v" for i in range(65)}}, "at most 64"),
    ({"identity": "spiffe://cluster.local/ns/default/sa/web"}, "identity"),
    ({"identity": "spiffe://evil.example/ns/default/sa/catalog"}, "identity"),
    ({"kind": "router"}, "kind"),
])
def test_each_bad_field_is_refused_by_name(change, field):
    body = {**GOOD, **change}
    if "addresses" in change:
        body["addresses"] = {**GOOD["addresses"], **change["addresses"]}
    with pytest.raises(InvalidRegistration, match=field.replace(".", r"\.").replace("!", "")):
        parse_registration(body)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["service", "version", "instance", "kind", "labels", "addresses",
                                        "identity"]),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                        st.text(max_size=8), inner, max_size=3), max_leaves=8)))
def test_any_body_is_a_registration_or_one_clear_refusal(body):
    try:
        reg = parse_registration({**GOOD, **body})
    except InvalidRegistration as e:
        assert str(e).startswith("register") and "\n" not in str(e)
    else:
        assert reg.service and reg.instance
