"""AuthorizationPolicy's decision, table by table: Istio's semantics without sockets.

The real-sidecar tests (tests/integration/test_authz.py) show the same rules
on the wire; here each rule of the evaluation gets a row.
"""

from __future__ import annotations

import ipaddress

import pytest
from multidict import CIMultiDict

from minimesh.config import load_manifests
from minimesh.config.attributes import StringMatch
from minimesh.proxy.inbound.authz import RequestFacts, Workload, decide, normalize_path, policies_for
from minimesh.proxy.inbound.jwt_authn import RequestAuth

PAYMENTS = Workload({"app": "payments", "version": "v1"}, port=8080, ip="127.0.0.1")
WEB = "cluster.local/ns/default/sa/web"
CATALOG = "cluster.local/ns/default/sa/catalog"


def policy(name: str, spec: str, namespace: str = "default", annotations: str = "") -> str:
    return (f"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
            f"metadata: {{name: {name}, namespace: {namespace}{annotations}}}\nspec:\n{spec}\n---\n")


def facts(principal=WEB, method="GET", path="/pay", host="payments", port=8080, source="127.0.0.1",
          remote=None, headers=None, auth=None) -> RequestFacts:
    return RequestFacts(principal=principal, source_ip=ipaddress.ip_address(source),
                        remote_ip=ipaddress.ip_address(remote) if remote else None, auth=auth, host=host,
                        port=port, method=method, path=path, destination_ip=ipaddress.ip_address("127.0.0.1"),
                        headers=CIMultiDict(headers or {}))


def verdict(yaml_text: str, f: RequestFacts, workload: Workload = PAYMENTS):
    return decide(policies_for(load_manifests(yaml_text), workload), f)


ALLOW_GET = policy("get-only", "  rules:\n  - to:\n    - operation: {methods: [GET]}")
ALLOW_WEB = policy("from-web", "  rules:\n  - from:\n    - source: {principals: [cluster.local/ns/default/sa/web]}")
DENY_PAY = policy("no-pay", "  action: DENY\n  rules:\n  - to:\n    - operation: {paths: [/pay*]}")
ALLOW_NOTHING = policy("allow-nothing", "  {}")
ALLOW_ALL = policy("allow-all", "  rules:\n  - {}")


@pytest.mark.parametrize("policies, request_facts, allowed, reason", [
    ("", facts(), True, None),  # no policy: allowed (and nothing is recorded)
    (ALLOW_NOTHING, facts(), False, "allow-nothing has no rules"),
    (ALLOW_ALL, facts(principal=None), True, "allowed by ALLOW policy default/allow-all rules[0]"),
    (ALLOW_GET, facts(method="GET"), True, "get-only rules[0]"),
    (ALLOW_GET, facts(method="POST"), False, "to[0].operation.methods ('GET',) does not match 'POST'"),
    (ALLOW_WEB, facts(principal=WEB), True, "from-web"),
    (ALLOW_WEB, facts(principal=CATALOG), False, "principals"),
    (ALLOW_WEB, facts(principal=None), False, "does not match None"),  # plaintext: no principal
    (DENY_PAY + ALLOW_ALL, facts(path="/pay"), False, "denied by DENY policy default/no-pay rules[0]"),
    (DENY_PAY + ALLOW_ALL, facts(path="/items"), True, "allow-all"),
    (DENY_PAY, facts(path="/items"), True, "no ALLOW policy applies"),
    # Two ALLOW policies: either may allow.
    (ALLOW_GET + ALLOW_WEB, facts(principal=CATALOG, method="GET"), True, "get-only"),
    (ALLOW_GET + ALLOW_WEB, facts(principal=WEB, method="POST"), True, "from-web"),
    (ALLOW_GET + ALLOW_WEB, facts(principal=CATALOG, method="POST"), False, "no ALLOW policy matched"),
])
def test_istio_evaluation_order(policies, request_facts, allowed, reason):
    if not policies:
        assert policies_for([], PAYMENTS).empty
        return
    v = verdict(policies, request_facts)
    assert v.allowed is allowed
    assert reason in v.reason, v.reason


def source(**fields) -> str:
    body = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return policy("p", f"  rules:\n  - from:\n    - source: {{{body}}}")


def operation(**fields) -> str:
    body = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return policy("p", f"  rules:\n  - to:\n    - operation: {{{body}}}")


def when(key: str, values: str = "", not_values: str = "") -> str:
    parts = [f'key: "{key}"'] + ([f"values: {values}"] if values else []) + ([f"notValues: {not_values}"] if not_values else [])
    return policy("p", f"  rules:\n  - when:\n    - {{{', '.join(parts)}}}")


AUTH = RequestAuth("https://issuer.example/alice", ("shop", "other"), "web-app",
                   {"iss": "https://issuer.example", "sub": "alice", "groups": ["buyers", "staff"],
                    "address": {"country": "NL"}, "admin": True}, {})


@pytest.mark.parametrize("policies, yes, no", [
    # from.source
    (source(principals='["cluster.local/ns/default/sa/*"]'), facts(principal=WEB), facts(principal=None)),
    (source(principals='["*"]'), facts(principal=WEB), facts(principal=None)),  # "*" needs a principal
    (source(notPrincipals='["*/sa/catalog"]'), facts(principal=None), facts(principal=CATALOG)),
    (source(namespaces="[default]"), facts(principal=WEB), facts(principal="cluster.local/ns/shop/sa/web")),
    (source(notNamespaces='["sho*"]'), facts(principal=WEB), facts(principal="cluster.local/ns/shop/sa/web")),
    (source(ipBlocks="[127.0.0.0/8]"), facts(source="127.0.0.5"), facts(source="10.1.2.3")),
    (source(notIpBlocks="[10.0.0.0/8]"), facts(source="127.0.0.5"), facts(source="10.1.2.3")),
    (source(remoteIpBlocks="[203.0.113.0/24]"), facts(remote="203.0.113.7"), facts(remote="198.51.100.1")),
    (source(notRemoteIpBlocks="[203.0.113.0/24]"), facts(remote="198.51.100.1"), facts(remote="203.0.113.7")),
    (source(requestPrincipals='["https://issuer.example/*"]'), facts(auth=AUTH), facts(auth=None)),
    (source(notRequestPrincipals='["*/alice"]'), facts(auth=None), facts(auth=AUTH)),
    # to.operation
    (operation(hosts='["PAYMENTS*"]'), facts(host="payments:8080"), facts(host="pricing")),  # case-insensitive
    (operation(notHosts="[evil]"), facts(host="payments"), facts(host="EVIL")),
    (operation(ports='["8080"]'), facts(port=8080), facts(port=9090)),
    (operation(notPorts='["8080"]'), facts(port=9090), facts(port=8080)),
    (operation(methods="[POST]"), facts(method="POST"), facts(method="post")),
    (operation(notMethods="[DELETE]"), facts(method="GET"), facts(method="DELETE")),
    (operation(paths='["/api/*", "*.png", /exact]'), facts(path="/api/x"), facts(path="/apix")),
    (operation(paths='["*.png"]'), facts(path="/img/a.png"), facts(path="/img/a.png.txt")),
    (operation(paths="[/exact]"), facts(path="/exact"), facts(path="/exact/")),
    (operation(notPaths='["/admin*"]'), facts(path="/pay"), facts(path="/admin/x")),
    # when
    (when("request.headers[x-user]", "[alice]"), facts(headers={"X-User": "alice"}), facts(headers={})),
    (when("request.headers[x-user]", '["*"]'), facts(headers={"x-user": ""}), facts(headers={})),
    (when("request.headers[x-user]", not_values="[mallory]"), facts(headers={}), facts(headers={"x-user": "mallory"})),
    (when("source.ip", "[127.0.0.1]"), facts(source="127.0.0.1"), facts(source="127.0.0.2")),
    (when("remote.ip", "[203.0.113.0/24]"), facts(remote="203.0.113.9"), facts()),
    (when("source.namespace", "[default]"), facts(principal=WEB), facts(principal=None)),
    (when("source.principal", f"[{WEB}]"), facts(principal=WEB), facts(principal=CATALOG)),
    (when("request.auth.principal", '["https://issuer.example/alice"]'), facts(auth=AUTH), facts()),
    (when("request.auth.audiences", "[shop]"), facts(auth=AUTH), facts()),
    (when("request.auth.presenter", "[web-app]"), facts(auth=AUTH), facts()),
    (when("request.auth.claims[groups]", "[staff]"), facts(auth=AUTH), facts()),  # a list claim: any element
    (when("request.auth.claims[address][country]", "[NL]"), facts(auth=AUTH), facts()),  # nested
    (when("request.auth.claims[admin]", '["true"]'), facts(auth=AUTH), facts()),
    (when("destination.ip", "[127.0.0.0/8]"), facts(), None),
    (when("destination.port", '["8080"]'), facts(port=8080), facts(port=9090)),
])
def test_each_field_matches_as_istio(policies, yes, no):
    assert verdict(policies, yes).allowed, verdict(policies, yes).reason
    if no is not None:
        assert not verdict(policies, no).allowed


def test_inside_a_rule_sources_are_or_fields_are_and_conditions_are_and():
    rule = policy("p", """\
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/web], namespaces: [default]}
    - source: {principals: [cluster.local/ns/default/sa/gateway]}
    to:
    - operation: {methods: [GET]}
    - operation: {methods: [POST], paths: [/pay]}
    when:
    - {key: "request.headers[x-a]", values: ["1"]}
    - {key: "request.headers[x-b]", values: ["2"]}""")
    both = {"x-a": "1", "x-b": "2"}
    assert verdict(rule, facts(principal=WEB, method="POST", path="/pay", headers=both)).allowed
    assert verdict(rule, facts(principal="cluster.local/ns/default/sa/gateway", method="GET", headers=both)).allowed
    assert not verdict(rule, facts(principal=WEB, method="POST", path="/refund", headers=both)).allowed
    assert not verdict(rule, facts(principal=WEB, method="GET", headers={"x-a": "1"})).allowed


@pytest.mark.parametrize("selector, namespace, workload_labels, applies", [
    ("", "default", {"app": "payments"}, True),  # no selector: the whole namespace
    ("", "shop", {"app": "payments"}, False),  # another namespace's policy
    ("", "istio-system", {"app": "payments"}, True),  # the root namespace: mesh-wide
    ("  selector: {matchLabels: {app: payments}}\n", "default", {"app": "payments", "version": "v1"}, True),
    ("  selector: {matchLabels: {app: payments, version: v2}}\n", "default", {"app": "payments", "version": "v1"}, False),
    ("  selector: {matchLabels: {app: payments}}\n", "istio-system", {"app": "payments"}, True),
    ("  selector: {matchLabels: {istio: ingressgateway}}\n", "istio-system", {"app": "payments"}, False),
])
def test_scope_selector_and_namespace(selector, namespace, workload_labels, applies):
    text = policy("nothing", selector + "  action: DENY\n  rules:\n  - {}", namespace)
    v = verdict(text, facts(), Workload(workload_labels))
    assert v.allowed is not applies


def test_audit_marks_and_never_denies():
    audit = policy("audit-pay", "  action: AUDIT\n  rules:\n  - to:\n    - operation: {paths: [/pay]}")
    v = verdict(audit + ALLOW_ALL, facts(path="/pay"))
    assert v.allowed and v.audit == "default/audit-pay rules[0]"
    assert verdict(audit + ALLOW_ALL, facts(path="/items")).audit is None
    # An AUDIT policy alone is not an ALLOW policy: it does not turn "no match" into a deny.
    assert verdict(audit, facts(path="/items")).allowed


def test_dry_run_is_evaluated_and_logged_but_not_enforced():
    dry = policy("deny-pay-dry", "  action: DENY\n  rules:\n  - to:\n    - operation: {paths: [/pay]}",
                 annotations=', annotations: {istio.io/dry-run: "true"}')
    v = verdict(dry, facts(path="/pay"))
    assert v.allowed and v.dry_run == "would deny: denied by DENY policy default/deny-pay-dry rules[0]"
    assert v.record()["dry_run"].startswith("would deny")
    assert verdict(dry, facts(path="/items")).dry_run.startswith("would allow")
    # A dry-run ALLOW-nothing does not make the workload deny.
    dry_nothing = policy("nothing-dry", "  {}", annotations=', annotations: {istio.io/dry-run: "true"}')
    v = verdict(dry_nothing, facts())
    assert v.allowed and v.dry_run.startswith("would deny: denied: no ALLOW policy matched")


@pytest.mark.parametrize("patterns, value, matched", [
    (("*",), "x", True), (("*",), "", False), (("*",), None, False),
    (("abc",), "abc", True), (("abc",), "abcd", False),
    (("ab*",), "abcd", True), (("*cd",), "abcd", True), (("*cd",), "abdc", False),
    (("a*d",), "abcd", False), (("a*d",), "a*d", True),  # a * in the middle is literal, as in Istio
    (("*b*",), "ab*", True), (("*b*",), "abc", False),  # "*b*" is the suffix "b*"
    (("x", "y*"), "yes", True),
])
def test_istio_string_match(patterns, value, matched):
    assert StringMatch(patterns)(value) is matched


@pytest.mark.parametrize("raw, normalized", [
    ("/pay", "/pay"),
    ("/public/../admin", "/admin"),
    ("/./admin/./x", "/admin/x"),
    ("/a/b/..", "/a/"),
    ("/%61dmin", "/admin"),  # an escaped unreserved character is decoded
    ("/a%2Fb", "/a%2Fb"),  # an escaped slash is not (Istio's default keeps it)
    ("/a%2fb", "/a%2Fb"),
    ("/../../etc?x=/../", "/etc?x=/../"),  # the query is left alone
])
def test_path_normalization(raw, normalized):
    assert normalize_path(raw) == normalized


def test_jwt_algorithm_confusion_is_refused():
    # A token "signed" with HS256 using an RSA public key's bytes as the secret must not verify
    # against that RSA key (the classic algorithm-confusion attack).
    import json as _json

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    from minimesh.config.requestauthentication import JwtRule, parse_jwks
    from minimesh.errors import JwtRejected
    from minimesh.proxy.inbound.jwt_authn import verify

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = parse_jwks(_json.dumps({"keys": [{**_json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "k"}]}))
    rule = JwtRule(issuer="https://i")
    good = jwt.encode({"iss": "https://i", "sub": "a"}, key, algorithm="RS256", headers={"kid": "k"})
    assert verify(good, rule, keys, 0).principal == "https://i/a"
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": "k", "typ": "JWT"}
    # base64url(header).base64url(payload).HMAC-SHA256(the public key's PEM as the secret)
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing = f"{b64(_json.dumps(header).encode())}.{b64(_json.dumps({'iss': 'https://i', 'sub': 'root'}).encode())}"
    forged = f"{signing}.{b64(hmac.new(pem, signing.encode(), hashlib.sha256).digest())}"
    with pytest.raises(JwtRejected):
        verify(forged, rule, keys, 0)
