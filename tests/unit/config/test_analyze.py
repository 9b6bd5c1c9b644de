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
