"""The TUI's canary split reads relative weights as Istio does: weight / sum, in percent."""

import pytest

from tui.actions import current_split, shift_weights


def resources(w1, w2):
    dr = {"kind": "DestinationRule", "metadata": {"name": "pricing"},
          "spec": {"host": "pricing", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                  {"name": "v2", "labels": {"version": "v2"}}]}}
    vs = {"kind": "VirtualService", "metadata": {"name": "pricing"},
          "spec": {"hosts": ["pricing"], "http": [{"route": [
              {"destination": {"host": "pricing", "subset": "v1"}, "weight": w1},
              {"destination": {"host": "pricing", "subset": "v2"}, "weight": w2}]}]}}
    return [dr, vs]


@pytest.mark.parametrize("w1, w2, shown", [(90, 10, (90, 10)), (1, 3, (25, 75)), (2, 1, (67, 33)), (0, 0, (0, 0))])
def test_relative_weights_show_as_percent(w1, w2, shown):
    split = current_split(resources(w1, w2), "pricing")
    assert tuple(w for _, w in split.weights) == shown


def test_a_shift_from_relative_weights_writes_percent():
    vs, split = shift_weights(resources(1, 3), "pricing", 10)
    assert [d["weight"] for d in vs["spec"]["http"][0]["route"]] == [15, 85]


# Hosts are read as Istio reads them: in the resource's namespace, an FQDN as itself.

from minimesh.config.load import parse_resource  # noqa: E402


def subsets(host, namespace=None):
    meta = {"name": "pricing", **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": meta,
            "spec": {"host": host, "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                               {"name": "v2", "labels": {"version": "v2"}}]}}


def test_a_destination_rule_written_with_the_fqdn_is_the_services():
    dr = subsets("pricing.default.svc.cluster.local")
    vs, split = shift_weights([dr], "pricing", 10)
    assert split.describe() == "v1 90% / v2 10%"
    assert vs["spec"]["hosts"] == ["pricing"] and "namespace" not in vs["metadata"]


def test_a_service_in_another_namespace_is_steered_there():
    shop = [subsets("pricing", namespace="shop")]
    assert current_split(shop, "pricing") is None  # default's pricing has no subsets: shop's DR is not its
    vs, split = shift_weights(shop, "pricing.shop", 20)
    assert split.describe() == "v1 80% / v2 20%"
    assert vs["metadata"] == {"name": "pricing", "namespace": "shop"}
    parsed = parse_resource(vs)  # what the control plane would accept, read as it reads it
    assert parsed.namespace == "shop"
    assert {d["destination"]["host"] for d in vs["spec"]["http"][0]["route"]} == {"pricing"}
    # Shifting again reads back the split just written.
    again, split = shift_weights([*shop, vs], "pricing.shop", 20)
    assert split.describe() == "v1 60% / v2 40%" and again["metadata"]["namespace"] == "shop"


def test_a_virtual_service_from_another_namespace_keeps_its_place_and_names_the_fqdn():
    elsewhere = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "pricing-shop"},
                 "spec": {"hosts": ["pricing.shop.svc.cluster.local"], "http": [{"timeout": "2s", "route": [
                     {"destination": {"host": "pricing.shop.svc.cluster.local", "subset": "v1"}}]}]}}
    vs, split = shift_weights([subsets("pricing", namespace="shop"), elsewhere], "pricing.shop", 50)
    assert split.describe() == "v1 50% / v2 50%"
    assert vs["metadata"] == {"name": "pricing-shop"} and vs["spec"]["http"][0]["timeout"] == "2s"
    assert {d["destination"]["host"] for d in vs["spec"]["http"][0]["route"]} == {"pricing.shop.svc.cluster.local"}
