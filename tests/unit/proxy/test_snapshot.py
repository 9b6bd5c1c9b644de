"""parse_snapshot: the control plane's JSON as clusters a sidecar can route to, or ConfigError."""

import pytest

from minimesh.errors import ConfigError
from minimesh.proxy.snapshot import parse_snapshot

from .manifests import dr_doc, route, vs_doc


def ep(instance, port, version="v1", service=None):
    return {"instance": instance, "address": f"127.0.0.1:{port}",
            "labels": {"app": service or instance.split("-")[0], "version": version}}


PRICING = {"endpoints": [ep("pricing-v1-0", 7001), ep("pricing-v1-1", 7002), ep("pricing-v2-0", 7003, "v2")]}


def snapshot(*resources, services=None, version="s1"):
    return {"version": version, "config_version": 3, "resources": list(resources),
            "services": services if services is not None else {"pricing": PRICING}}


def test_clusters_per_service_and_subset():
    doc = snapshot(dr_doc("pricing", [{"name": "v1", "labels": {"version": "v1"}},
                                      {"name": "v2", "labels": {"version": "v2"}},
                                      {"name": "v3", "labels": {"version": "v3"}}]))
    config = parse_snapshot(doc)
    members = {key: [e.instance for e in c.endpoints] for key, c in config.clusters.items()}
    assert members == {
        ("pricing", None): ["pricing-v1-0", "pricing-v1-1", "pricing-v2-0"],
        ("pricing", "v1"): ["pricing-v1-0", "pricing-v1-1"],
        ("pricing", "v2"): ["pricing-v2-0"],
        ("pricing", "v3"): [],  # a subset with no instance yet: 503 UH, not 404
    }
    assert (config.version, config.config_version) == ("s1", 3)
    assert config.cluster("pricing", "v2").name == "pricing|v2"
    assert config.is_service("pricing") and config.is_service("pricing.default.svc.cluster.local")
    assert not config.is_service("example.com")


@pytest.mark.parametrize("rule_lb,subset_lb,expected_base,expected_subset", [
    (None, None, "LEAST_REQUEST", "LEAST_REQUEST"),          # Istio's default
    ("ROUND_ROBIN", None, "ROUND_ROBIN", "ROUND_ROBIN"),     # the subset inherits the rule's policy
    ("ROUND_ROBIN", "RANDOM", "ROUND_ROBIN", "RANDOM"),      # the subset's own policy wins
    (None, "RANDOM", "LEAST_REQUEST", "RANDOM"),
    ("LEAST_CONN", None, "LEAST_REQUEST", "LEAST_REQUEST"),  # Istio's old spelling
])
def test_load_balancer_from_destination_rule_and_subset(rule_lb, subset_lb, expected_base, expected_subset):
    subset = {"name": "v1", "labels": {"version": "v1"}}
    if subset_lb:
        subset["trafficPolicy"] = {"loadBalancer": {"simple": subset_lb}}
    config = parse_snapshot(snapshot(dr_doc("pricing", [subset], lb=rule_lb)))
    assert config.cluster("pricing", None).load_balancer == expected_base
    assert config.cluster("pricing", "v1").load_balancer == expected_subset


def test_destination_rule_for_a_service_without_instances_makes_empty_clusters():
    config = parse_snapshot(snapshot(dr_doc("ratings", [{"name": "v1", "labels": {"version": "v1"}}]),
                                     services={}))
    assert config.cluster("ratings", None).endpoints == ()
    assert config.cluster("ratings", "v1").endpoints == ()


def test_virtual_services_are_indexed_by_short_host():
    doc = snapshot(vs_doc("pricing.default.svc.cluster.local", route("r", host="pricing"), name="p"))
    config = parse_snapshot(doc)
    assert list(config.virtual_services) == ["pricing"]
    assert config.virtual_services["pricing"].name == "p"


def test_first_virtual_service_by_name_wins_for_a_host():
    doc = snapshot(vs_doc("pricing", route("from-b", host="pricing"), name="b"),
                   vs_doc("pricing", route("from-a", host="pricing"), name="a"))
    assert parse_snapshot(doc).virtual_services["pricing"].name == "a"


def test_empty_snapshot_is_fine():
    config = parse_snapshot({"version": "0"})
    assert config.clusters == {} and config.virtual_services == {}


@pytest.mark.parametrize("endpoint", [
    {"instance": "x", "address": "127.0.0.1"},          # no port
    {"instance": "x", "address": "127.0.0.1:http"},     # port not a number
    {"address": "127.0.0.1:7000"},                     # no instance
    {"instance": "x"},                                  # no address
    {"instance": "x", "address": 7000},                 # not a string
    {"instance": "x", "address": "127.0.0.1:7000", "labels": ["app"]},
    "127.0.0.1:7000",                                   # not an object
    {"instance": "x", "address": "not-an-address"},     # the security review's poisoned registration
    {"instance": "x", "address": "127.0.0.1:70000"},    # no such port
    {"instance": "x", "address": "127.0.0.1:7000", "identity": ["spiffe://x"]},
])
def test_a_bad_endpoint_is_quarantined_alone(endpoint):
    good = {"instance": "pricing-v1-0", "address": "127.0.0.1:7001"}
    config = parse_snapshot(snapshot(services={"pricing": {"endpoints": [endpoint, good]}}))
    assert [e.instance for e in config.cluster("pricing", None).endpoints] == ["pricing-v1-0"]
    [why] = config.quarantined
    assert why.startswith("endpoint of pricing: ")


@pytest.mark.parametrize("resource", [
    {**vs_doc("pricing", route("r", host="pricing")), "spec": {"hosts": ["pricing"], "http": [], "bogus": 1}},
    vs_doc("pricing", {"route": [{"destination": {"host": "pricing"}}], "retries": {"retryOn": "sometimes"}}),
    vs_doc("pricing", {"route": [{"destination": {"host": "pricing"}, "weight": 0},
                                 {"destination": {"host": "pricing"}, "weight": 0}]}),
    {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "g"}, "spec": {}},
    dr_doc("pricing", lb="FASTEST"),
    1,
])
def test_an_invalid_resource_is_quarantined_alone(resource):
    good = dr_doc("catalog", lb="ROUND_ROBIN")
    config = parse_snapshot(snapshot(resource, good))
    assert [r.name for r in config.resources] == ["catalog"]
    assert len(config.quarantined) == 1


@pytest.mark.parametrize("doc", [
    None, [], "s1", {"services": {}},                      # not an object with a version
    {"version": "s1", "services": []},                     # services must be an object
    {"version": "s1", "services": {"pricing": []}},        # a service must be an object
    {"version": "s1", "services": {"pricing": {"endpoints": {}}}},
    {"version": "s1", "resources": {}},                    # resources must be a list
    {"version": "s1", "config_version": "three"},
])
def test_malformed_snapshot_is_a_config_error_not_a_crash(doc):
    """The sidecar NACKs on ConfigError only: an AttributeError escapes discovery._take and ends the
    watch task for good; a ValueError is mistaken for "control plane unreachable" and never NACKed;
    a wrong-typed list or map that parses as empty is half-applied instead of refused."""
    with pytest.raises(ConfigError):
        parse_snapshot(doc)
