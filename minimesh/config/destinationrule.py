"""DestinationRule: what happens to traffic once it is routed to a service.

A VirtualService decides *where* a request goes; a DestinationRule for that
host decides *how*: the subsets (named groups of instances picked by label,
like version: v2) and a trafficPolicy (trafficpolicy.py): the load balancer,
connection-pool limits (the circuit breaker), outlier detection (ejecting
instances that keep failing) and the retry budget. A subset may carry its own
trafficPolicy, whose blocks replace the rule's for traffic to that subset,
as in Istio.
"""

from dataclasses import dataclass
from typing import Any

from .fields import At, check_fields, labels, mapping, require, sequence, string
from .resource import Labels, Resource
from .trafficpolicy import (  # noqa: F401 (re-exported)
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_LOAD_BALANCER, LOAD_BALANCERS, ConnectionPool, ConsistentHash, LoadBalancer,
    OutlierDetection, RetryBudget, TrafficPolicy, merge, parse_traffic_policy,
)
from .virtualservice import parse_host


@dataclass(frozen=True)
class Subset:
    name: str
    labels: Labels
    traffic_policy: TrafficPolicy | None = None


@dataclass(frozen=True, kw_only=True)
class DestinationRule(Resource):
    kind = "DestinationRule"
    host: str
    subsets: tuple[Subset, ...] = ()
    traffic_policy: TrafficPolicy | None = None

    def subset(self, name: str) -> Subset | None:
        return next((s for s in self.subsets if s.name == name), None)

    def policy_for(self, subset: str | None) -> TrafficPolicy | None:
        """The policy in force for traffic to `subset`: the rule's, with the subset's blocks over it (Istio's merge)."""
        chosen = self.subset(subset) if subset else None
        return merge(self.traffic_policy, chosen.traffic_policy if chosen is not None else None)


def parse_destination_rule(spec: dict, at: At, **meta) -> DestinationRule:
    check_fields(spec, at, ("host", "subsets", "trafficPolicy"), ("exportTo", "workloadSelector"))
    host = parse_host(require(spec, "host", at), at / "host")
    subsets, seen = [], set()
    for i, item in enumerate(sequence(spec.get("subsets"), at / "subsets")):
        subset = _parse_subset(item, at / "subsets" / i)
        if subset.name in seen:
            raise (at / "subsets" / i / "name").error(f"subset '{subset.name}' is defined twice")
        seen.add(subset.name)
        subsets.append(subset)
    policy = parse_traffic_policy(spec["trafficPolicy"], at / "trafficPolicy") if "trafficPolicy" in spec else None
    return DestinationRule(host=host, subsets=tuple(subsets), traffic_policy=policy, **meta)


def _parse_subset(value: Any, at: At) -> Subset:
    block = mapping(value, at)
    check_fields(block, at, ("name", "labels", "trafficPolicy"))
    name = string(require(block, "name", at), at / "name")
    policy = parse_traffic_policy(block["trafficPolicy"], at / "trafficPolicy") if "trafficPolicy" in block else None
    return Subset(name, Labels(labels(block.get("labels"), at / "labels")), policy)
