"""minimesh analyze: istioctl analyze's messages, from resources (and what runs) to codes and lines."""

import pytest

from minimesh.config import analyze, load_manifests

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pricing}
spec:
  host: pricing
  subsets: [{name: v1, labels: {version: v1}}]
"""


def vs(name="pricing", host="pricing", http="[{route: [{destination: {host: pricing, subset: v1}}]}]"):
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{host}]
  http: {http}
"""


def policy(kind="AuthorizationPolicy", labels="{app: pricing}"):
    spec = "{selector: {matchLabels: %s}, action: DENY, rules: [{}]}" % labels
    if kind == "PeerAuthentication":
        spec = "{selector: {matchLabels: %s}, mtls: {mode: STRICT}}" % labels
    return f"apiVersion: security.istio.io/v1\nkind: {kind}\nmetadata: {{name: p}}\nspec: {spec}\n"


def codes(*docs, services=None, workloads=None):
    return [(m.code, m.text) for m in analyze(load_manifests("---\n".join(docs)), services, workloads)]


SHOP = {"pricing", "web"}
WORKLOADS = [{"app": "pricing", "version": "v1"}, {"app": "web", "version": "v1"}]


def test_a_clean_config_says_nothing():
    assert codes(DR, vs(), policy(), services=SHOP, workloads=WORKLOADS) == []


@pytest.mark.parametrize("docs, code, fragment", [
    ((DR, vs(http="[{route: [{destination: {host: pricing, subset: v2}}]}]")), "IST0101",
     "VirtualService default/pricing http[0].route[0]: subset 'v2' of host 'pricing' is not defined"),
    ((vs(http="[{route: [{destination: {host: pricing, port: {number: 9080}}}]}]"),), "IST0101",
     "http[0].route[0].destination.port: host 'pricing' has no port 9080"),
    ((vs(http="[{route: [{destination: {host: pricing}}], mirror: {host: pricing, port: {number: 81}}}]"),),
     "IST0101", "http[0].mirror.port: host 'pricing' has no port 81 (minimesh services answer on 80); no copy"),
    ((DR.replace("host: pricing", "host: pricnig"),), "IST0101",
     "DestinationRule default/pricing host: host 'pricnig' is not a service of the mesh"),
    ((vs(), vs(name="pricing-too")), "IST0109",
     "VirtualService default/pricing-too hosts: the VirtualServices default/pricing, default/pricing-too all claim"),
    ((DR, vs(http="[{route: [{destination: {host: pricing}}]}, "
                   "{match: [{uri: {prefix: /a}}], route: [{destination: {host: pricing}}]}]")),
     "IST0130", "http[1]: never used, because http[0] has no match"),
    ((DR, vs(http="[{match: [{uri: {prefix: /a}}], route: [{destination: {host: pricing}}]}, "
                   "{match: [{uri: {prefix: /a}, name: again}], route: [{destination: {host: pricing}}]}]")),
     "IST0130", "http[1]: never used, because every one of its matches is already in http[0]"),
    ((DR, vs(http="[{match: [{uri: {prefix: /a}}], route: [{destination: {host: pricing}}]}, "
                   "{match: [{uri: {prefix: /b}}, {uri: {prefix: /a}}], route: [{destination: {host: pricing}}]}]")),
     "IST0131", "http[1].match[1]: never used, because http[0] has the same match"),
    ((policy(labels="{app: pricnig}"),), "IST0127", "AuthorizationPolicy default/p selector: no workload"),
    ((policy("PeerAuthentication", "{version: v9}"),), "IST0127", "PeerAuthentication default/p selector"),
])
def test_each_check_names_istios_code_and_the_field(docs, code, fragment):
    found = codes(*docs, services=SHOP, workloads=WORKLOADS)
    assert any(c == code and fragment in text for c, text in found), found


def test_istioctl_wording_and_levels():
    [message] = analyze(load_manifests(DR + "---\n" + vs(http="[{route: [{destination: {host: pricing, subset: v2}}]}]")))
    assert message.istioctl().startswith("Error [IST0101] (VirtualService pricing.default) http[0].route[0]: subset")
    [message] = analyze(load_manifests(policy(labels="{app: nobody}")), SHOP, WORKLOADS)
    assert message.istioctl().startswith("Warning [IST0127] (AuthorizationPolicy p.default) selector: no workload")


def test_a_later_resource_with_the_same_name_replaces_the_earlier_one():
    # A lesson's steps rewrite one VirtualService: analyzing them together is not a conflict.
    later = load_manifests(vs(http="[{route: [{destination: {host: pricing, subset: v9}}]}]"))
    first = load_manifests(vs(http="[{route: [{destination: {host: pricing}}]}]"))
    assert [m.code for m in analyze(load_manifests(DR) + later + first)] == []
    assert [m.code for m in analyze(load_manifests(DR) + first + later)] == ["IST0101"]


def test_without_a_running_mesh_host_and_selector_checks_are_skipped():
    docs = (DR.replace("host: pricing", "host: pricnig"), policy(labels="{app: nobody}"))
    assert codes(*docs) == []
    assert [c for c, _ in codes(*docs, services=SHOP, workloads=WORKLOADS)] == ["IST0101", "IST0127"]


GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["%s"]}]
"""


def ingress_vs(gateways="[shop-gateway]", hosts="['*']", namespace="default"):
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: shop-ingress, namespace: {namespace}}}
spec:
  hosts: {hosts}
  gateways: {gateways}
  http: [{{route: [{{destination: {{host: web.default.svc.cluster.local}}}}]}}]
"""


RUNNING = [("default", {"app": "pricing", "version": "v1"}), ("default", {"app": "web", "version": "v1"}),
           ("istio-system", {"istio": "ingressgateway"})]


def test_a_gateway_and_its_virtualservice_say_nothing():
    assert codes(GATEWAY % "*", ingress_vs(), services=SHOP, workloads=RUNNING) == []
    assert codes(GATEWAY % "shop.example.com", ingress_vs(hosts="[shop.example.com]")) == []
    # A server host '*.example.com' overlaps a VirtualService host '*' (Istio's test is an overlap).
    assert codes(GATEWAY % "*.example.com", ingress_vs(hosts="['*']")) == []


@pytest.mark.parametrize("docs, code, fragment", [
    # Istio's virtualservice.GatewayAnalyzer: a `gateways:` entry naming no Gateway.
    ((GATEWAY % "*", ingress_vs(gateways="[mesh, shop-gw]", hosts="[web]")), "IST0101",
     "VirtualService default/shop-ingress gateways[1]: Gateway 'default/shop-gw' does not exist "
     "(Gateways: default/shop-gateway)"),
    ((ingress_vs(gateways="[istio-system/shop-gateway]"),), "IST0101",
     "gateways[0]: Gateway 'istio-system/shop-gateway' does not exist (Gateways: none)"),
    # ... and one whose hosts the Gateway does not open (to this namespace).
    ((GATEWAY % "shop.example.com", ingress_vs(hosts="[api.example.com]")), "IST0132",
     "VirtualService default/shop-ingress hosts: none of api.example.com is opened to namespace 'default' by "
     "Gateway default/shop-gateway (its servers' hosts: */shop.example.com)"),
    ((GATEWAY % "./shop.example.com", ingress_vs(gateways="[default/shop-gateway]", hosts="[shop.example.com]",
                                                 namespace="foo")),
     "IST0132", "none of shop.example.com is opened to namespace 'foo'"),
    # A short host means the service's FQDN, which a server host 'shop.example.com' does not open.
    ((GATEWAY % "shop.example.com", ingress_vs(hosts="[pricing]")), "IST0132",
     "none of pricing.default.svc.cluster.local is opened"),
    # No Istio analyzer: a Gateway nothing binds to (minimesh's own code).
    ((GATEWAY % "*",), "MM0001",
     "Gateway default/shop-gateway servers: no VirtualService names it in 'gateways:', so every Host it opens "
     "gets 404 NR; bind a VirtualService with gateways: [default/shop-gateway]"),
    ((GATEWAY % "*", vs(http="[{route: [{destination: {host: pricing}}]}]")), "MM0001", "no VirtualService names"),
])
def test_gateway_checks(docs, code, fragment):
    found = codes(*docs)
    assert any(c == code and fragment in text for c, text in found), found


def test_a_gateway_selecting_no_running_workload_is_istios_ist0101():
    found = codes(GATEWAY % "*", ingress_vs(), services=SHOP, workloads=RUNNING[:2])
    assert found == [("IST0101", "Gateway default/shop-gateway selector: no workload has the labels "
                                 "istio=ingressgateway (the lesson's ingress gateway has istio=ingressgateway); "
                                 "no gateway serves this Gateway")]
    assert codes(GATEWAY % "*", ingress_vs()) == []  # offline: what runs is not known


def test_minimesh_own_codes_say_istioctl_does_not_report_them():
    [message] = analyze(load_manifests(GATEWAY % "*"))
    assert (message.level, message.code) == ("Warning", "MM0001")
    assert message.istioctl().startswith("Warning [MM0001] (Gateway shop-gateway.default) servers: no VirtualService")
    assert str(message).endswith("(minimesh analyze: MM0001 GatewayWithoutVirtualService; istioctl analyze does "
                                 "not check this)")


def test_conflicting_hosts_are_a_mesh_check():
    # Two VirtualServices bound to one Gateway for one host are merged there (Istio too): no IST0109.
    other = ingress_vs().replace("name: shop-ingress", "name: shop-ingress-2")
    assert codes(GATEWAY % "*", ingress_vs(), other) == []
    plain = "[{route: [{destination: {host: pricing}}]}]"
    assert [c for c, _ in codes(vs(http=plain), vs(name="pricing-too", http=plain))] == ["IST0109", "IST0109"]


def test_a_selector_reaches_its_own_namespace_and_the_root_reaches_all():
    def in_ns(doc, namespace):
        return doc.replace("metadata: {name: p}", f"metadata: {{name: p, namespace: {namespace}}}")
    foo = [("foo", {"app": "catalog"})]
    # pricing runs in default only: a policy in foo selecting app=pricing selects nothing.
    assert [c for c, _ in codes(in_ns(policy(), "foo"), workloads=WORKLOADS)] == ["IST0127"]
    assert "no workload in namespace 'foo' has the labels app=pricing" in codes(in_ns(policy(), "foo"),
                                                                                workloads=WORKLOADS)[0][1]
    assert codes(in_ns(policy(labels="{app: catalog}"), "foo"), workloads=foo) == []
    # An AuthorizationPolicy in the root namespace selects in every namespace; a PeerAuthentication there does not.
    assert codes(in_ns(policy(labels="{app: catalog}"), "istio-system"), workloads=foo) == []
    assert [c for c, _ in codes(in_ns(policy("PeerAuthentication", "{app: catalog}"), "istio-system"),
                                workloads=foo)] == ["IST0127"]


def test_a_sidecar_selecting_nothing():
    sidecar = """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: egress}
spec:
  workloadSelector: {labels: {app: pricnig}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
    [(code, text)] = codes(sidecar, workloads=WORKLOADS)
    assert code == "IST0127" and text.startswith("Sidecar default/egress workloadSelector: no workload in namespace "
                                                  "'default' has the labels app=pricnig; this Sidecar applies")
    assert codes(sidecar.replace("pricnig", "pricing"), workloads=WORKLOADS) == []
