"""Route matching follows Envoy: what a learner's curl would hit."""

import pytest
from multidict import CIMultiDict

from minimesh.config import HTTPMatchRequest, StringMatch, load_manifests

from .cases import VS


def _match(yaml_match: str) -> HTTPMatchRequest:
    (vs,) = load_manifests(VS + f"  - match:\n    - {yaml_match}\n    route:\n    - destination: {{host: pricing}}\n")
    return vs.http[0].match[0]


@pytest.mark.parametrize("match, method, path, headers, expected", [
    ("{}", "GET", "/anything", {}, True),  # an empty match matches everything
    ("uri: {exact: /items}", "GET", "/items", {}, True),
    ("uri: {exact: /items}", "GET", "/items?page=2", {}, True),  # exact ignores the query
    ("uri: {exact: /items}", "GET", "/items/1", {}, False),
    ("uri: {prefix: /items}", "GET", "/items/1", {}, True),
    ("uri: {prefix: /items}", "GET", "/item", {}, False),
    ("uri: {prefix: '/items?page'}", "GET", "/items?page=2", {}, True),  # prefix sees the full path
    ("uri: {regex: '/items/[0-9]+'}", "GET", "/items/42", {}, True),
    ("uri: {regex: '/items/[0-9]+'}", "GET", "/items/42?x=1", {}, True),
    ("uri: {regex: '/items/[0-9]+'}", "GET", "/items/42/x", {}, False),  # a full match, not a search
    ("uri: {regex: '[0-9]+'}", "GET", "/items/42", {}, False),
    ("method: {exact: POST}", "POST", "/", {}, True),
    ("method: {exact: POST}", "GET", "/", {}, False),
    ("headers: {x-canary: {exact: 'yes'}}", "GET", "/", {"X-Canary": "yes"}, True),  # names ignore case
    ("headers: {X-Canary: {exact: 'yes'}}", "GET", "/", {"x-canary": "yes"}, True),
    ("headers: {x-canary: {exact: 'yes'}}", "GET", "/", {"x-canary": "YES"}, False),  # values do not
    ("headers: {x-canary: {exact: 'yes'}}", "GET", "/", {}, False),
    ("headers: {user-agent: {prefix: curl}}", "GET", "/", {"User-Agent": "curl/8.0"}, True),
    ("headers: {user-agent: {regex: '.*Firefox.*'}}", "GET", "/", {"user-agent": "Mozilla Firefox 1"}, True),
    # Every condition of one match must hold.
    ("{uri: {prefix: /a}, method: {exact: GET}}", "GET", "/a", {}, True),
    ("{uri: {prefix: /a}, method: {exact: GET}}", "POST", "/a", {}, False),
])
def test_match_semantics(match, method, path, headers, expected):
    assert _match(match).matches(method, path, headers) is expected


def test_header_match_accepts_a_cimultidict():
    match = _match("headers: {x-canary: {exact: 'yes'}}")
    assert match.matches("GET", "/", CIMultiDict([("X-CANARY", "yes")]))
    assert not match.matches("GET", "/", CIMultiDict([("X-CANARY", "no")]))


def test_routes_are_tried_in_order_and_the_first_match_wins():
    (vs,) = load_manifests(VS + """\
  - name: canary
    match:
    - headers: {x-canary: {exact: "yes"}}
    - uri: {prefix: /beta}
    route:
    - destination: {host: pricing, subset: v2}
  - name: rest
    route:
    - destination: {host: pricing, subset: v1}
""")
    assert vs.route_for("GET", "/prices", {"x-canary": "yes"}).name == "canary"
    assert vs.route_for("GET", "/beta/prices", {}).name == "canary"  # matches are OR-ed
    assert vs.route_for("GET", "/prices", {}).name == "rest"


def test_string_match_regex_is_compiled_once_and_not_compared():
    a, b = StringMatch("regex", "/x.*"), StringMatch("regex", "/x.*")
    assert a.pattern is not None and a == b and "pattern" not in repr(a)
    assert hash(a) == hash(b)
