"""The pure decisions behind rewrite, redirect, CORS origins and the new match fields (table-driven)."""

import pytest
from multidict import CIMultiDict

from minimesh.config import load_manifests
from minimesh.proxy.message import Request
from minimesh.proxy.outbound.redirect import location
from minimesh.proxy.outbound.rewrite import rewrite_path
from tests.unit.config.cases import VS  # a VirtualService for pricing, up to `http:`



def route(text: str):
    """The first http route of a VirtualService whose `http:` list is `text` ("- ...", then 4-space lines)."""
    (vs,) = load_manifests(VS + "  " + text.strip("\n") + "\n")
    return vs.http[0]


@pytest.mark.parametrize("route_yaml, path, expected", [
    # Envoy's prefix_rewrite swaps exactly the matched prefix; the query stays.
    ("- match: [{uri: {prefix: /shop/}}]\n    rewrite: {uri: /}", "/shop/items?x=1", "/items?x=1"),
    ("- match: [{uri: {prefix: /shop}}]\n    rewrite: {uri: /}", "/shop/items", "//items"),
    ("- match: [{uri: {prefix: /Shop}, ignoreUriCase: true}]\n    rewrite: {uri: /v2}", "/SHOP/a", "/v2/a"),
    # exact (and regex) matches: the whole path is swapped.
    ("- match: [{uri: {exact: /old}}]\n    rewrite: {uri: /new}", "/old?q", "/new?q"),
    ("- match: [{uri: {regex: /o.d}}]\n    rewrite: {uri: /new}", "/old", "/new"),
    # no uri match: Istio's implied prefix '/' (the surprise apply warns about).
    ("- rewrite: {uri: /v2}", "/items", "/v2items"),
    # uriRegexRewrite: every match in the path, never the query.
    ("- rewrite: {uriRegexRewrite: {match: 'a', rewrite: 'b'}}", "/a/a?a=a", "/b/b?a=a"),
    ("- rewrite: {uriRegexRewrite: {match: '^/v1/(\\w+)$', rewrite: '/\\1/v1'}}", "/v1/items", "/items/v1"),
])
def test_rewrite_path_as_envoy(route_yaml, path, expected):
    r = route(route_yaml + "\n    route: [{destination: {host: pricing}}]\n")
    entry = r.matching("GET", path, {}) or None
    assert rewrite_path(r.rewrite, entry, path) == expected


def request(path="/a?q=1", authority="shop:8080", **headers):
    return Request("GET", path, authority, CIMultiDict(headers))


@pytest.mark.parametrize("redirect, req, expected", [
    ("{uri: /b}", request(), "http://shop:8080/b?q=1"),
    ("{uri: '/b?x=2'}", request(), "http://shop:8080/b?x=2"),  # a query in the new uri replaces the old
    ("{authority: other}", request(), "http://other/a?q=1"),
    ("{port: 9000}", request(), "http://shop:9000/a?q=1"),
    ("{scheme: https}", request(authority="shop:80"), "https://shop/a?q=1"),  # the old default port goes
    ("{scheme: https}", request(), "https://shop:8080/a?q=1"),
    ("{scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}", request(), "https://shop/a?q=1"),
    ("{scheme: https, derivePort: FROM_REQUEST_PORT}", request(authority="shop:80"), "https://shop:80/a?q=1"),
])
def test_redirect_location(redirect, req, expected):
    r = route(f"- redirect: {redirect}\n")
    assert location(r.redirect, req) == expected
    assert r.redirect.redirect_code == 301  # Envoy's default


@pytest.mark.parametrize("match, path, expected", [
    ("{uri: {prefix: /old/}}", "/old/page?q=1", "http://shop:8080/new/page?q=1"),
    ("{uri: {exact: /old}}", "/old", "http://shop:8080/new/"),
])
def test_redirect_prefix_rewrite_swaps_only_the_matched_prefix(match, path, expected):
    r = route(f"- match: [{match}]\n    redirect: {{prefixRewrite: /new/}}\n")
    assert location(r.redirect, request(path), r.matching("GET", path, {})) == expected


@pytest.mark.parametrize("origins, origin, allowed", [
    ("[{exact: 'https://a.example'}]", "https://a.example", True),
    ("[{exact: 'https://a.example'}]", "https://a.example.evil", False),
    ("[{prefix: 'https://a.'}]", "https://a.example", True),
    ("[{regex: 'https://.*[.]test'}]", "https://x.test", True),
    ("[{regex: 'https://.*[.]test'}]", "https://x.test.evil", False),
    ("[{exact: '*'}]", "https://anyone.example", True),  # Envoy: an entry matching '*' allows all
])
def test_cors_origins(origins, origin, allowed):
    r = route(f"- corsPolicy: {{allowOrigins: {origins}}}\n    route: [{{destination: {{host: pricing}}}}]\n")
    assert r.cors_policy.allows(origin) is allowed


@pytest.mark.parametrize("match, method, path, headers, labels, port, expected", [
    ("{queryParams: {v: {exact: '2'}}}", "GET", "/a?v=2&v=3", {}, {}, 80, True),
    ("{queryParams: {v: {exact: '3'}}}", "GET", "/a?v=2&v=3", {}, {}, 80, False),  # the first value counts
    ("{queryParams: {v: {exact: ''}}}", "GET", "/a?v", {}, {}, 80, True),
    ("{queryParams: {v: {regex: '[0-9]+'}}}", "GET", "/a?v=12x", {}, {}, 80, False),  # a full match
    ("{headers: {x-a: {}}}", "GET", "/", {"x-a": ""}, {}, 80, True),
    ("{headers: {x-a: {}}}", "GET", "/", {}, {}, 80, False),
    ("{headers: {x-a: {regex: '*'}}}", "GET", "/", {"x-a": "1"}, {}, 80, True),  # Istio's presence spelling
    ("{withoutHeaders: {x-a: {exact: '1'}}}", "GET", "/", {"x-a": "2"}, {}, 80, True),
    ("{withoutHeaders: {x-a: {exact: '1'}}}", "GET", "/", {"x-a": "1"}, {}, 80, False),
    ("{withoutHeaders: {x-a: {exact: '1'}}}", "GET", "/", {}, {}, 80, False),  # Envoy: absent does not match
    ("{withoutHeaders: {x-a: {}}}", "GET", "/", {}, {}, 80, True),
    ("{withoutHeaders: {x-a: {}}}", "GET", "/", {"x-a": "1"}, {}, 80, False),
    ("{uri: {exact: /Items}, ignoreUriCase: true}", "GET", "/ITEMS", {}, {}, 80, True),
    ("{uri: {regex: /Items}, ignoreUriCase: true}", "GET", "/ITEMS", {}, {}, 80, False),  # not for regex
    ("{sourceLabels: {app: web}}", "GET", "/", {}, {"app": "web", "version": "v1"}, 80, True),
    ("{sourceLabels: {app: web, version: v2}}", "GET", "/", {}, {"app": "web", "version": "v1"}, 80, False),
    ("{port: 8080}", "GET", "/", {}, {}, 8080, True),
    ("{port: 8080}", "GET", "/", {}, {}, 80, False),
    ("{authority: {prefix: catalog}}", "GET", "/", {"host": "catalog:8080"}, {}, 8080, True),
    ("{authority: {exact: catalog}}", "GET", "/", {"host": "catalog:8080"}, {}, 8080, False),  # port and all
    ("{authority: {exact: catalog}}", "GET", "/", {}, {}, 80, False),
])
def test_match_fields(match, method, path, headers, labels, port, expected):
    r = route(f"- match: [{match}]\n    route: [{{destination: {{host: pricing}}}}]\n")
    assert r.matches(method, path, headers, labels, port) is expected
