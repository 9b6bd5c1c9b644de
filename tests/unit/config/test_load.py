"""Loading manifests: what is accepted, what is refused, and where the error points."""

import pytest
import yaml

from minimesh.config import (
    DEFAULT_LOAD_BALANCER, DEFAULT_RETRY, AuthorizationPolicy, DestinationRule, PeerAuthentication,
    VirtualService, check_references, load_file, load_files, load_manifests, parse_resource, short_host,
)
from minimesh.errors import ConfigError
from tests.istio_schema import validate_istio

from .cases import ACCEPTED, VS
from .rejected_cases import REJECTED


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_manifests_load(name):
    (resource,) = load_manifests(ACCEPTED[name], f"{name}.yaml")
    assert resource.name
    assert resource.manifest == yaml.safe_load(ACCEPTED[name])


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_manifests_name_file_line_and_field(name):
    case = REJECTED[name]
    with pytest.raises(ConfigError) as caught:
        load_manifests(case.text, "lesson/step.yaml")
    error = caught.value
    assert (error.source, error.line, error.field) == ("lesson/step.yaml", case.line, case.field)
    assert case.message in error.message
    assert "\n" not in str(error)
    assert str(error).startswith(f"lesson/step.yaml:{case.line}: {case.field}: ")


@pytest.mark.parametrize("name", sorted(n for n in REJECTED if REJECTED[n].crd is not None))
def test_parse_resource_refuses_the_same_without_lines(name):
    case = REJECTED[name]
    with pytest.raises(ConfigError) as caught:
        parse_resource(yaml.safe_load(case.text))
    assert (caught.value.source, caught.value.line, caught.value.field) == ("<snapshot>", None, case.field)


def test_parse_resource_round_trips_a_manifest():
    (loaded,) = load_manifests(ACCEPTED["vs-everything"])
    assert parse_resource(loaded.manifest) == loaded


@pytest.mark.parametrize("text, line, message", [
    ("kind: [unclosed\n", 2, "YAML syntax error"),
    ("a: 1\n b: 2\n", 2, "YAML syntax error"),
    ("- just\n- a list\n", 1, "expected a mapping"),
    (ACCEPTED["vs-minimal"] + "---\n42\n", 11, "expected a mapping"),
    ("apiVersion: networking.istio.io/v1\nkind: EnvoyFilter\n", 2, "'EnvoyFilter' is not supported by minimesh"),
    ("kind: VirtualService\napiVersion: networking.istio.io/v1\nspec: {hosts: [a]}\n", 1, "'metadata' with a 'name'"),
])
def test_malformed_documents(text, line, message):
    with pytest.raises(ConfigError) as caught:
        load_manifests(text, "bad.yaml")
    assert message in caught.value.message
    assert caught.value.line == line


def test_multi_document_skips_empty_documents_and_keeps_order():
    text = "---\n" + ACCEPTED["vs-minimal"] + "---\n---\n# only a comment\n---\n" + ACCEPTED["dr-everything"]
    kinds = [r.kind for r in load_manifests(text)]
    assert kinds == ["VirtualService", "DestinationRule"]


def test_error_in_second_document_points_at_its_line_in_the_file():
    first = ACCEPTED["vs-minimal"]
    second = ACCEPTED["dr-everything"].replace("simple: ROUND_ROBIN", "simple: NOPE")
    with pytest.raises(ConfigError) as caught:
        load_manifests(first + "---\n" + second)
    expected = (first + "---\n" + second).splitlines().index("    loadBalancer: {simple: NOPE}") + 1
    assert caught.value.line == expected


def test_same_resource_twice_in_one_input_is_refused():
    with pytest.raises(ConfigError, match="appears twice"):
        load_manifests(ACCEPTED["vs-minimal"] + "---\n" + ACCEPTED["vs-minimal"])


def test_load_file_and_files_name_the_path(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(ACCEPTED["vs-minimal"])
    bad.write_text(REJECTED["unknown-field-typo"].text)
    assert [r.name for r in load_files([good, str(good).replace("good", "good")])] == ["pricing", "pricing"]
    with pytest.raises(ConfigError) as caught:
        load_files([good, bad])
    assert caught.value.source == str(bad)
    with pytest.raises(ConfigError, match="cannot read file"):
        load_file(tmp_path / "missing.yaml")


def test_virtual_service_model_and_defaults():
    (vs,) = load_manifests(ACCEPTED["vs-everything"])
    assert isinstance(vs, VirtualService)
    assert vs.key == ("VirtualService", "default", "pricing")
    assert vs.hosts == ("pricing",)  # the long Kubernetes name is shortened
    canary, split = vs.http
    assert canary.route[0].weight == 100  # a lone destination gets it all
    assert canary.retries is None and canary.retry_policy == DEFAULT_RETRY
    assert canary.timeout is None
    assert dict(canary.match[0].headers).keys() == {"x-canary", "user-agent"}
    assert [(d.destination.subset, d.weight) for d in split.route] == [("v1", 90), ("v2", 10)]
    assert split.timeout == 2.0
    assert split.retries.attempts == 3 and split.retries.per_try_timeout == 0.5
    assert split.retries.retry_on == ("5xx", "connect-failure", "retriable-status-codes")
    assert split.retries.retriable_status_codes == (503,)
    assert (split.fault.delay.fixed_delay, split.fault.delay.percentage) == (1.5, 10.0)
    assert (split.fault.abort.http_status, split.fault.abort.percentage) == (503, 0.5)
    assert [(m.destination.subset, m.percentage) for m in split.mirrors] == [("v2", 25.5)]
    assert hash(vs) == hash(load_manifests(ACCEPTED["vs-everything"])[0])


@pytest.mark.parametrize("route_yaml, expected", [
    # Istio: a split destination without a weight gets 0.
    ("    - destination: {host: pricing, subset: v1}\n      weight: 100\n"
     "    - destination: {host: pricing, subset: v2}\n", [100, 0]),
    ("    - destination: {host: pricing}\n      weight: 0\n", [0]),
    ("    - destination: {host: pricing}\n", [100]),
    ("    - destination: {host: a}\n      weight: 33\n    - destination: {host: b}\n      weight: 33\n"
     "    - destination: {host: c}\n      weight: 34\n", [33, 33, 34]),
])
def test_weights(route_yaml, expected):
    (vs,) = load_manifests(VS + "  - route:\n" + route_yaml)
    assert [d.weight for d in vs.http[0].route] == expected


def test_weights_are_relative_as_on_istio_and_a_sum_other_than_100_is_warned():
    # Istio >= 1.15 (istio/istio PR 39544): 1 and 3 mean 25 % and 75 %.
    text = VS + ("  - route:\n    - destination: {host: pricing, subset: v1}\n      weight: 1\n"
                 "    - destination: {host: pricing, subset: v2}\n      weight: 3\n")
    (vs,) = load_manifests(text, "canary.yaml")
    assert [d.weight for d in vs.http[0].route] == [1, 3]
    assert len(vs.warnings) == 1
    assert vs.warnings[0].startswith("canary.yaml:8: spec.http[0].route: weights add up to 4, not 100")
    assert "25%, 75%" in vs.warnings[0]
    # Adding up to 100, or a single destination: nothing to warn about.
    assert load_manifests(VS + "  - route:\n    - destination: {host: pricing}\n      weight: 7\n")[0].warnings == ()


def test_a_request_set_or_add_of_host_is_the_authority_rewrite_as_on_istio():
    # istio/istio route.go TranslateHeadersOperations: Host / :authority in request set or add become
    # the route's host_rewrite_literal (set wins over add; validation refuses both); not a header op.
    (vs,) = load_manifests(VS + "  - match: [{uri: {prefix: /a}}]\n    headers: {request: {set: {Host: backend}}}\n"
                           "    rewrite: {uri: /b}\n    route:\n    - destination: {host: pricing}\n"
                           "  - headers: {request: {add: {':authority': added, x-k: v}}}\n"
                           "    route:\n    - destination: {host: pricing}\n"
                           "      headers: {request: {set: {host: dest}}}\n")
    first, second = vs.http
    assert (first.rewrite.uri, first.rewrite.authority, first.headers) == ("/b", "backend", None)
    assert second.rewrite.authority == "added"
    assert second.headers.request.add == (("x-k", "v"),) and second.headers.request.authority is None
    assert second.route[0].headers.request.authority == "dest" and second.route[0].headers.request.set == ()
    # On a route the proxy answers itself there is no upstream to rewrite for: ignored, as Istio, and said.
    (vs,) = load_manifests(VS + "  - headers: {request: {set: {host: x}}}\n    directResponse: {status: 204}\n")
    assert vs.http[0].rewrite is None and vs.http[0].headers is None
    assert len(vs.warnings) == 1 and "ignored" in vs.warnings[0]


@pytest.mark.parametrize("retries_yaml, attempts, retry_on, codes", [
    ("{attempts: 4}", 4, DEFAULT_RETRY.retry_on, ()),  # retryOn unset: Istio's default conditions
    ("{perTryTimeout: 1s}", 0, DEFAULT_RETRY.retry_on, ()),  # attempts unset: 0, retries off
    ("{attempts: 1, retryOn: gateway-error}", 1, ("gateway-error",), ()),
    ("{attempts: 1, retryOn: '503, 504'}", 1, ("retriable-status-codes",), (503, 504)),
    ("{attempts: 1, retryOn: 'reset,retriable-status-codes,502'}", 1, ("reset", "retriable-status-codes"), (502,)),
])
def test_retry_on(retries_yaml, attempts, retry_on, codes):
    (vs,) = load_manifests(VS + f"  - route:\n    - destination: {{host: pricing}}\n    retries: {retries_yaml}\n")
    retries = vs.http[0].retries
    assert (retries.attempts, retries.retry_on, retries.retriable_status_codes) == (attempts, retry_on, codes)


def test_default_retry_is_istios():
    assert DEFAULT_RETRY.attempts == 2 and DEFAULT_RETRY.per_try_timeout is None
    # Istio >= 1.24 (PR 52111): 503 is no longer retried by default.
    assert DEFAULT_RETRY.retry_on == ("connect-failure", "refused-stream", "unavailable", "cancelled")
    assert DEFAULT_RETRY.retriable_status_codes == ()
    assert DEFAULT_RETRY.backoff == 0.025 and DEFAULT_RETRY.ignore_previous_hosts


@pytest.mark.parametrize("fault_yaml, delay_share, abort_share, warned", [
    # Istio: no percentage means no request is touched — and apply warns, naming `percentage`.
    ("{abort: {httpStatus: 503}}", None, 0.0, True),
    ("{delay: {fixedDelay: 1s}}", 0.0, None, True),
    ("{delay: {fixedDelay: 1s, percent: 30}}", 30.0, None, False),  # delay's deprecated integer percent
    ("{abort: {httpStatus: 503, percentage: {value: 0}}}", None, 0.0, True),
    ("{abort: {httpStatus: 503, percentage: {value: 40}}}", None, 40.0, False),
])
def test_fault_percentage_as_istio(fault_yaml, delay_share, abort_share, warned):
    (vs,) = load_manifests(VS + f"  - route:\n    - destination: {{host: pricing}}\n    fault: {fault_yaml}\n",
                           source="vs.yaml")
    fault = vs.http[0].fault
    assert (fault.delay.percentage if fault.delay else None) == delay_share
    assert (fault.abort.percentage if fault.abort else None) == abort_share
    assert bool(vs.warnings) is warned
    if warned:
        assert vs.warnings[0].startswith("vs.yaml:") and "percentage" in vs.warnings[0], vs.warnings


def test_abort_has_no_deprecated_percent():
    with pytest.raises(ConfigError, match="percent"):
        load_manifests(VS + "  - route:\n    - destination: {host: pricing}\n"
                            "    fault: {abort: {httpStatus: 503, percent: 50}}\n")


def test_mirrors_list_and_mirror_together():
    (vs,) = load_manifests(VS + "  - route:\n    - destination: {host: pricing}\n"
                                "    mirror: {host: pricing, subset: v2}\n"
                                "    mirrors:\n    - destination: {host: catalog}\n      percentage: {value: 5}\n")
    assert [(m.destination.host, m.destination.subset, m.percentage) for m in vs.http[0].mirrors] == [
        ("pricing", "v2", 100.0), ("catalog", None, 5.0)]


def test_retry_backoff_and_previous_hosts():
    (vs,) = load_manifests(VS + "  - route:\n    - destination: {host: pricing}\n"
                                "    retries: {attempts: 2, backoff: 100ms, retryIgnorePreviousHosts: false,"
                                " retryRemoteLocalities: true}\n")
    retries = vs.http[0].retries
    assert (retries.backoff, retries.ignore_previous_hosts) == (0.1, False)


def test_destination_rule_model_and_defaults():
    (dr,) = load_manifests(ACCEPTED["dr-everything"])
    assert isinstance(dr, DestinationRule)
    assert dr.traffic_policy.load_balancer.simple == "ROUND_ROBIN"
    pool = dr.traffic_policy.connection_pool
    assert (pool.http1_max_pending_requests, pool.max_requests_per_connection, pool.max_retries) == (10, 1, 3)
    od = dr.traffic_policy.outlier_detection
    assert (od.consecutive_5xx_errors, od.interval, od.base_ejection_time, od.max_ejection_percent) == (3, 5.0, 60.0, 50)
    assert dr.subset("v2").labels == {"version": "v2"}
    assert dr.subset("v3") is None
    # Istio's merge: the subset's loadBalancer replaces the rule's; the other blocks are inherited.
    assert dr.policy_for("v2").load_balancer.simple == "RANDOM"
    assert dr.policy_for("v2").connection_pool == pool and dr.policy_for("v2").outlier_detection == od
    assert dr.policy_for("v1") == dr.traffic_policy
    (defaults,) = load_manifests(ACCEPTED["dr-outlier-defaults"])
    od = defaults.traffic_policy.outlier_detection
    assert (od.consecutive_5xx_errors, od.interval, od.base_ejection_time, od.max_ejection_percent) == (5, 10.0, 30.0, 10)
    assert defaults.traffic_policy.load_balancer is None and DEFAULT_LOAD_BALANCER == "LEAST_REQUEST"


DR_OUTLIER = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: p}\nspec:\n  host: p\n" \
             "  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 1%s}\n"


@pytest.mark.parametrize("extra, percent, warned", [
    ("", 10, "outlierDetection: maxEjectionPercent 10 (Istio default; 0 means unset): as on Istio, Envoy ejects an "
             "endpoint only if the ejected share, it included, stays within 10 %, so a destination of fewer than 10 "
             "endpoints never loses one"),
    (", maxEjectionPercent: 0", 10, "outlierDetection.maxEjectionPercent: maxEjectionPercent 10 (Istio default; 0 means"),
    (", maxEjectionPercent: 30", 30, "maxEjectionPercent 30: as on Istio, Envoy ejects an endpoint only if the ejected "
                                     "share, it included, stays within 30 %, so a destination of fewer than 4 endpoints"),
    (", maxEjectionPercent: 50", 50, None),  # one of two may go: nothing to say
    (", maxEjectionPercent: 100", 100, None),
])
def test_a_max_ejection_percent_that_ejects_no_endpoint_of_a_small_destination_is_a_warning(extra, percent, warned):
    # Istio passes maxEjectionPercent to Envoy only when above 0, and Envoy (1.31 on) counts the endpoint it
    # would eject: at the default 10 %, the lessons' three instances never lose one (outlier.py may_eject).
    (dr,) = load_manifests(DR_OUTLIER % extra, "dr.yaml")
    assert dr.traffic_policy.outlier_detection.max_ejection_percent == percent
    if warned is None:
        assert dr.warnings == ()
    else:
        assert len(dr.warnings) == 1 and dr.warnings[0].startswith("dr.yaml:7: spec.trafficPolicy.") \
            and warned in dr.warnings[0] and "set maxEjectionPercent: 50 or 100" in dr.warnings[0], dr.warnings


def test_security_models():
    (strict,) = load_manifests(ACCEPTED["pa-strict"])
    assert isinstance(strict, PeerAuthentication) and strict.mtls_mode == "STRICT" and strict.selector is None
    (selected,) = load_manifests(ACCEPTED["pa-selector-v1beta1"])
    assert selected.selector == {"app": "payments"} and selected.selector.selects({"app": "payments", "version": "v1"})
    (allow,) = load_manifests(ACCEPTED["authz-allow"])
    assert isinstance(allow, AuthorizationPolicy) and allow.action == "ALLOW" and not allow.dry_run
    (deny_all,) = load_manifests(ACCEPTED["authz-deny-all"])
    assert deny_all.rules == () and deny_all.action == "ALLOW"
    (every,) = load_manifests(ACCEPTED["authz-every-field"])
    assert every.dry_run and every.namespace == "istio-system" and len(every.rules[0].conditions) == 12
    (jwt_policy,) = load_manifests(ACCEPTED["ra-every-field"])
    (rule,) = jwt_policy.jwt_rules
    assert rule.from_headers == (("x-token", "Token "),) and rule.from_params == ("token",)
    assert rule.timeout == 2.0 and "roles" in rule.space_delimited_claims


@pytest.mark.parametrize("host, short", [
    ("catalog", "catalog"),
    ("catalog.default.svc.cluster.local", "catalog"),
    ("Catalog.default.svc.cluster.local", "catalog"),
    ("catalog.default", "catalog.default"),  # Istio does not expand this either
    ("catalog.other.svc.cluster.local", "catalog.other.svc.cluster.local"),
    ("httpbin.org", "httpbin.org"),
])
def test_short_host(host, short):
    assert short_host(host) == short


def test_check_references_flags_undefined_subsets():
    vs_text = VS + """\
  - route:
    - destination: {host: pricing, subset: v1}
      weight: 50
    - destination: {host: pricing, subset: v3}
      weight: 50
    mirror: {host: catalog, subset: v2}
"""
    resources = load_manifests(vs_text + "---\n" + ACCEPTED["dr-everything"])
    problems = check_references(resources)
    assert len(problems) == 2
    assert "http[0].route[1]: subset 'v3' of host 'pricing'" in problems[0] and "defines: v1, v2" in problems[0]
    assert "http[0].mirror: subset 'v2' of host 'catalog'" in problems[1] and "no DestinationRule" in problems[1]
    assert check_references(load_manifests(ACCEPTED["vs-everything"] + "---\n" + ACCEPTED["dr-everything"])) == []


DR_POOL = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: p}\nspec:\n  host: p\n" \
          "  trafficPolicy:\n    connectionPool: %s\n"


@pytest.mark.parametrize("pool, idle", [
    # Istio's applyConnectionPool (pilot/pkg/networking/core/cluster_traffic_policy.go): http.idleTimeout when
    # set, else tcp.idleTimeout, into Envoy's common idle_timeout — never the shorter of the two.
    ("{tcp: {idleTimeout: 2s}}", 2.0),
    ("{http: {idleTimeout: 3s}}", 3.0),
    ("{http: {idleTimeout: 1h}, tcp: {idleTimeout: 1s}}", 3600.0),  # http wins, though longer
    ("{http: {idleTimeout: 1s}, tcp: {idleTimeout: 0s}}", 1.0),
    # tcp.idleTimeout: 0s disables the timeout (the API: "If set to 0s, the timeout will be disabled"; the CRD
    # has no 1ms rule on it since istio/istio#55409), and so it does for HTTP connections too.
    ("{tcp: {idleTimeout: 0s}}", 0.0),
    ("{tcp: {idleTimeout: '0'}}", 0.0),
    ("{tcp: {maxConnections: 5}}", None),  # unset: the pool's default
])
def test_the_idle_timeout_is_http_idle_timeout_else_tcp_idle_timeout_as_istio(pool, idle):
    (dr,) = load_manifests(DR_POOL % pool, "dr.yaml")
    assert dr.traffic_policy.connection_pool.idle_timeout == idle
    assert validate_istio(yaml.safe_load(DR_POOL % pool)) == []  # valid on Istio: so accepted here


def test_an_http_idle_timeout_of_0s_is_refused_as_istios_crd_does_naming_tcp_idle_timeout():
    text = DR_POOL % "{http: {idleTimeout: 0s}}"
    assert validate_istio(yaml.safe_load(text)), "Istio's CRD accepts http.idleTimeout: 0s after all"
    with pytest.raises(ConfigError) as e:
        load_manifests(text, "dr.yaml")
    message = str(e.value)
    assert message.startswith("dr.yaml:7: spec.trafficPolicy.connectionPool.http.idleTimeout:"), message
    assert "at least 1ms" in message and "tcp.idleTimeout: 0s" in message and "\n" not in message
