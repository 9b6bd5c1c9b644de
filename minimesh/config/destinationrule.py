"""DestinationRule: what happens to traffic once it is routed to a service.

A VirtualService decides *where* a request goes; a DestinationRule for that
host decides *how*: the subsets (named groups of instances picked by label,
like version: v2), the load balancer, connection-pool limits (the circuit
breaker) and outlier detection (ejecting instances that keep failing). A
subset may carry its own trafficPolicy, which replaces the rule's top-level
one for traffic to that subset, as in Istio.
"""

from dataclasses import dataclass
from typing import Any

from .fields import At, check_fields, duration, enum, integer, labels, mapping, require, sequence, string
from .resource import Labels, Resource
from .virtualservice import parse_host

DEFAULT_LOAD_BALANCER = "LEAST_REQUEST"  # Istio's default: power of two choices
LOAD_BALANCERS = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM")
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds, Istio's connectTimeout default


@dataclass(frozen=True)
class ConnectionPool:
    # None means unlimited, as Istio's 0 ("use the default", which is 2^32-1).
    http1_max_pending_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None


@dataclass(frozen=True)
class OutlierDetection:
    # Istio's defaults once the block is present.
    consecutive_5xx_errors: int = 5  # 0 disables ejection on 5xx
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: int = 10


@dataclass(frozen=True)
class TrafficPolicy:
    load_balancer: str | None = None  # None: DEFAULT_LOAD_BALANCER
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None


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
        """The policy in force for traffic to `subset`: its own if it has one, else the rule's."""
        chosen = self.subset(subset) if subset else None
        if chosen is not None and chosen.traffic_policy is not None:
            return chosen.traffic_policy
        return self.traffic_policy


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
    policy = _parse_policy(spec["trafficPolicy"], at / "trafficPolicy") if "trafficPolicy" in spec else None
    return DestinationRule(host=host, subsets=tuple(subsets), traffic_policy=policy, **meta)


def _parse_subset(value: Any, at: At) -> Subset:
    block = mapping(value, at)
    check_fields(block, at, ("name", "labels", "trafficPolicy"))
    name = string(require(block, "name", at), at / "name")
    policy = _parse_policy(block["trafficPolicy"], at / "trafficPolicy") if "trafficPolicy" in block else None
    return Subset(name, Labels(labels(block.get("labels"), at / "labels")), policy)


def _parse_policy(value: Any, at: At) -> TrafficPolicy:
    block = mapping(value, at)
    check_fields(
        block, at, ("loadBalancer", "connectionPool", "outlierDetection"),
        ("portLevelSettings", "proxyProtocol", "retryBudget", "tls", "tunnel"),
    )
    return TrafficPolicy(
        load_balancer=_parse_lb(block["loadBalancer"], at / "loadBalancer") if "loadBalancer" in block else None,
        connection_pool=_parse_pool(block["connectionPool"], at / "connectionPool") if "connectionPool" in block else None,
        outlier_detection=_parse_outlier(block["outlierDetection"], at / "outlierDetection")
        if "outlierDetection" in block else None,
    )


def _parse_lb(value: Any, at: At) -> str:
    block = mapping(value, at)
    check_fields(
        block, at, ("simple",),
        ("consistentHash", "localityLbSetting", "warmup", "warmupDurationSecs", "zoneAwareLbSetting"),
    )
    simple = require(block, "simple", at)
    if simple == "LEAST_CONN":  # Istio's deprecated spelling of the same balancer
        return "LEAST_REQUEST"
    return enum(simple, at / "simple", LOAD_BALANCERS, ("UNSPECIFIED", "PASSTHROUGH"))


def _parse_pool(value: Any, at: At) -> ConnectionPool:
    block = mapping(value, at)
    check_fields(block, at, ("http",), ("tcp",))
    http, where = mapping(block.get("http"), at / "http"), at / "http"
    check_fields(
        http, where, ("http1MaxPendingRequests", "maxRequestsPerConnection", "maxRetries"),
        ("h2UpgradePolicy", "http2KeepAlive", "http2MaxRequests", "idleTimeout", "maxConcurrentStreams",
         "useClientProtocol"),
    )

    def limit(key: str) -> int | None:
        if key not in http:
            return None
        return integer(http[key], where / key, 0, 2**31 - 1) or None

    return ConnectionPool(limit("http1MaxPendingRequests"), limit("maxRequestsPerConnection"), limit("maxRetries"))


def _parse_outlier(value: Any, at: At) -> OutlierDetection:
    block = mapping(value, at)
    check_fields(
        block, at, ("consecutive5xxErrors", "interval", "baseEjectionTime", "maxEjectionPercent"),
        ("consecutiveErrors", "consecutiveGatewayErrors", "consecutiveLocalOriginFailures", "minHealthPercent",
         "outlierDetectionHttpErrorCodes", "splitExternalLocalOriginErrors"),
    )
    d = OutlierDetection()
    return OutlierDetection(
        consecutive_5xx_errors=integer(block.get("consecutive5xxErrors", d.consecutive_5xx_errors),
                                       at / "consecutive5xxErrors", 0, 2**32 - 1),
        interval=duration(block["interval"], at / "interval") if "interval" in block else d.interval,
        base_ejection_time=duration(block["baseEjectionTime"], at / "baseEjectionTime")
        if "baseEjectionTime" in block else d.base_ejection_time,
        max_ejection_percent=integer(block.get("maxEjectionPercent", d.max_ejection_percent),
                                     at / "maxEjectionPercent", 0, 100),
    )
