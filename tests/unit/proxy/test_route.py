"""match_route: which http route of a VirtualService a request takes (Istio/Envoy semantics)."""

import pytest
from multidict import CIMultiDict

from minimesh.config import DEFAULT_RETRY
from minimesh.proxy.outbound.route import match_route

from .manifests import route, vs

# One VirtualService exercising every kind of match; routes are tried in order.
SHOP = vs(
    "svc",
    route("exact-items", {"uri": {"exact": "/items"}}),
    route("regex-item", {"uri": {"regex": "/item/[0-9]+"}}),
    route("prefix-api", {"uri": {"prefix": "/api/"}, "method": {"exact": "POST"}}),
    route("prefix-query", {"uri": {"prefix": "/search?q=toy"}}),
    route("header-exact", {"headers": {"end-user": {"exact": "jason"}}}),
    route("header-prefix", {"headers": {"x-canary": {"prefix": "yes"}}}),
    route("header-regex", {"headers": {"x-ver": {"regex": "v[23]"}}}),
    route("ored", {"uri": {"exact": "/a"}}, {"uri": {"exact": "/b"}}),
    route("anded", {"uri": {"prefix": "/both"}, "headers": {"x-k": {"exact": "1"}}}),
)


@pytest.mark.parametrize("method,path,headers,expected", [
    # uri.exact ignores the query string (Envoy's path match works on the path only)
    ("GET", "/items", {}, "exact-items"),
    ("GET", "/items?page=2", {}, "exact-items"),
    ("GET", "/items/", {}, None),
    ("GET", "/Items", {}, None),
    # uri.regex is a full match on the path without its query
    ("GET", "/item/42", {}, "regex-item"),
    ("GET", "/item/42?x=1", {}, "regex-item"),
    ("GET", "/item/42/more", {}, None),
    ("GET", "/xitem/42", {}, None),
    # uri.prefix AND method
    ("POST", "/api/checkout", {}, "prefix-api"),
    ("GET", "/api/checkout", {}, None),
    # uri.prefix looks at the raw path, query included
    ("GET", "/search?q=toys", {}, "prefix-query"),
    ("GET", "/search?q=car", {}, None),
    # headers: names are case-insensitive, values are not
    ("GET", "/x", {"End-User": "jason"}, "header-exact"),
    ("GET", "/x", {"end-user": "Jason"}, None),
    ("GET", "/x", {"x-canary": "yes-please"}, "header-prefix"),
    ("GET", "/x", {"x-ver": "v3"}, "header-regex"),
    ("GET", "/x", {"x-ver": "v33"}, None),
    # match entries of one route are ORed
    ("GET", "/a", {}, "ored"),
    ("GET", "/b", {}, "ored"),
    # conditions inside one entry are ANDed
    ("GET", "/both", {"x-k": "1"}, "anded"),
    ("GET", "/both", {}, None),
    ("GET", "/both", {"x-k": "2"}, None),
    # first route wins: /items with end-user=jason matches two routes
    ("GET", "/items", {"end-user": "jason"}, "exact-items"),
])
def test_match_route(method, path, headers, expected):
    got = match_route(SHOP, "svc", method, path, CIMultiDict(headers))
    assert (got.name if got is not None else None) == expected


def test_route_without_match_catches_everything_after_earlier_routes():
    service = vs("svc", route("special", {"uri": {"exact": "/special"}}), route("rest"))
    assert match_route(service, "svc", "GET", "/special", CIMultiDict()).name == "special"
    assert match_route(service, "svc", "DELETE", "/anything?x", CIMultiDict()).name == "rest"


def test_no_virtual_service_gives_the_default_route_with_istio_retries():
    got = match_route(None, "catalog", "GET", "/items", CIMultiDict())
    assert got.retry_policy == DEFAULT_RETRY
    assert got.timeout is None
    [only] = got.route
    assert (only.destination.host, only.destination.subset, only.weight) == ("catalog", None, 100)


def test_virtual_service_that_matches_nothing_is_no_route():
    assert match_route(SHOP, "svc", "GET", "/nowhere", CIMultiDict()) is None
