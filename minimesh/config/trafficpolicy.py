"""A DestinationRule's trafficPolicy: how a sidecar treats the connections and
requests it sends to one destination (service, or subset of it).

    loadBalancer      which endpoint gets a request (balancer.py)
    connectionPool    Envoy's circuit breakers and connection settings (breaker.py, pool.py)
    outlierDetection  ejecting endpoints that keep failing (outlier.py)
    retryBudget       how many retries may be in flight, as a share of requests (breaker.py)
    tls               TLS origination or mTLS to the destination (clienttls.py, proxy/outbound/origination.py)
    portLevelSettings the same four, for one port of the service

Every field here is either enforced by the data plane or refused at load time
with what Istio would do instead; nothing is accepted and ignored.

Merging follows Istio's `MergeTrafficPolicy`: start from the rule's top-level
policy, apply its portLevelSettings for the port, then the subset's policy,
then the subset's portLevelSettings — each of the four blocks replacing the
one before it *whole* (a subset's `connectionPool` replaces the top-level
`connectionPool`; its absence inherits it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .clienttls import ClientTLS, parse_client_tls
from .duration import parse_duration
from .fields import At, boolean, check_fields, duration, enum, integer, mapping, number, require, sequence, string

DEFAULT_LOAD_BALANCER = "LEAST_REQUEST"  # Istio's default: power of two choices
LOAD_BALANCERS = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM")
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds, Istio's connectTimeout default
SERVICE_PORT = 80  # minimesh services have one port: apps call http://catalog, port 80
MAX_INT32 = 2**31 - 1


@dataclass(frozen=True)
class TcpKeepalive:
    time: float | None = None  # idle time before the first probe (None: the OS default, 2 h on Linux)
    interval: float | None = None
    probes: int | None = None


@dataclass(frozen=True)
class ConnectionPool:
    """Envoy's circuit-breaker thresholds and connection settings; None means unlimited / Envoy's default."""

    max_connections: int | None = None  # tcp.maxConnections -> max_connections
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # tcp.connectTimeout
    tcp_keepalive: TcpKeepalive | None = None  # tcp.tcpKeepalive -> SO_KEEPALIVE
    idle_timeout: float | None = None  # http.idleTimeout, else tcp.idleTimeout; 0: never closed for idleness
    http1_max_pending_requests: int | None = None  # -> max_pending_requests
    http2_max_requests: int | None = None  # -> max_requests: concurrent requests, HTTP/1.1 too
    max_requests_per_connection: int | None = None  # a connection is closed after this many requests
    max_retries: int | None = None  # -> max_retries: concurrent retries


@dataclass(frozen=True)
class OutlierDetection:
    # Istio's defaults once the block is present.
    consecutive_5xx_errors: int = 5  # 0 disables ejection on 5xx
    consecutive_gateway_errors: int = 0  # 502, 503, 504; 0 disables
    consecutive_local_origin_failures: int = 5  # only with split_external_local_origin_errors
    split_external_local_origin_errors: bool = False
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: int = 10
    min_health_percent: int = 0  # Istio's default: panic mode only when no host is healthy


@dataclass(frozen=True)
class ConsistentHash:
    """Ring hash on one request property (exactly one of the four is set)."""

    http_header_name: str | None = None
    http_cookie: str | None = None  # the cookie's name
    cookie_path: str | None = None
    cookie_ttl: float | None = None  # with a ttl, a request without the cookie gets one (Envoy generates it)
    use_source_ip: bool = False
    http_query_parameter_name: str | None = None
    minimum_ring_size: int = 1024  # Envoy's default


@dataclass(frozen=True)
class LoadBalancer:
    simple: str | None = None  # None: DEFAULT_LOAD_BALANCER (unless consistent_hash)
    consistent_hash: ConsistentHash | None = None
    warmup: float | None = None  # seconds of slow start for a new endpoint (warmupDurationSecs / warmup.duration)
    warmup_min_percent: float = 10.0  # Envoy's slow start min_weight_percent default
    warmup_aggression: float = 1.0


@dataclass(frozen=True)
class RetryBudget:
    percent: float = 20.0  # Envoy's default budget_percent
    min_retry_concurrency: int = 3  # Envoy's default


@dataclass(frozen=True)
class TrafficPolicy:
    load_balancer: LoadBalancer | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    retry_budget: RetryBudget | None = None
    tls: ClientTLS | None = None
    port_level: tuple["TrafficPolicy", ...] = ()  # portLevelSettings, each for SERVICE_PORT


_BLOCKS = ("load_balancer", "connection_pool", "outlier_detection", "retry_budget", "tls")


def merge(base: TrafficPolicy | None, over: TrafficPolicy | None) -> TrafficPolicy | None:
    """`over`'s blocks replace `base`'s, whole; port-level settings of each are applied on the way."""
    merged = None
    for policy in (base, over):
        if policy is None:
            continue
        for layer in (policy, *policy.port_level):
            if merged is None:
                merged = replace(layer, port_level=())
                continue
            merged = replace(merged, **{b: getattr(layer, b) for b in _BLOCKS if getattr(layer, b) is not None})
    return merged


# --- parsing -------------------------------------------------------------------


def parse_traffic_policy(value: Any, at: At, port_level: bool = False) -> TrafficPolicy:
    block = mapping(value, at)
    fields = ("loadBalancer", "connectionPool", "outlierDetection")
    if port_level:
        check_fields(block, at, ("port", *fields, "tls"))
        port = integer(require(mapping(require(block, "port", at), at / "port"), "number", at / "port"),
                       at / "port" / "number", 1, 65535)
        if port != SERVICE_PORT:
            raise (at / "port" / "number").error(
                f"minimesh services have one port, {SERVICE_PORT} (apps call http://service); "
                f"Istio would apply these settings to traffic on port {port} only")
    else:
        check_fields(block, at, (*fields, "retryBudget", "portLevelSettings", "tls"), ("proxyProtocol", "tunnel"))
    return TrafficPolicy(
        load_balancer=_parse_lb(block["loadBalancer"], at / "loadBalancer") if "loadBalancer" in block else None,
        connection_pool=_parse_pool(block["connectionPool"], at / "connectionPool")
        if "connectionPool" in block else None,
        outlier_detection=_parse_outlier(block["outlierDetection"], at / "outlierDetection")
        if "outlierDetection" in block else None,
        retry_budget=_parse_budget(block["retryBudget"], at / "retryBudget") if "retryBudget" in block else None,
        tls=parse_client_tls(block["tls"], at / "tls") if "tls" in block else None,
        port_level=tuple(parse_traffic_policy(p, at / "portLevelSettings" / i, port_level=True)
                         for i, p in enumerate(sequence(block.get("portLevelSettings"), at / "portLevelSettings"))),
    )


def _limit(block: dict, key: str, at: At) -> int | None:
    """Istio's 0 (or absence) means Envoy's 'unlimited' (2^32-1)."""
    if key not in block:
        return None
    return integer(block[key], at / key, 0, MAX_INT32) or None


def _refuse(block: dict, at: At, key: str, what_istio_does: str) -> None:
    if key in block:
        raise (at / key).error(f"field '{key}' is not supported by minimesh; {what_istio_does}")


def _parse_pool(value: Any, at: At) -> ConnectionPool:
    block = mapping(value, at)
    check_fields(block, at, ("tcp", "http"))
    tcp, t_at = mapping(block.get("tcp"), at / "tcp"), at / "tcp"
    http, h_at = mapping(block.get("http"), at / "http"), at / "http"
    _refuse(tcp, t_at, "maxConnectionDuration", "Istio would close each upstream connection after that long")
    check_fields(tcp, t_at, ("maxConnections", "connectTimeout", "tcpKeepalive", "idleTimeout"))
    _refuse(http, h_at, "maxConcurrentStreams",
            "it limits streams on one HTTP/2 connection, and minimesh speaks HTTP/1.1 to upstreams only")
    _refuse(http, h_at, "http2KeepAlive", "Istio would send HTTP/2 PING frames; minimesh speaks HTTP/1.1 only")
    check_fields(http, h_at, ("http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection",
                              "maxRetries", "idleTimeout", "h2UpgradePolicy", "useClientProtocol"))
    if "h2UpgradePolicy" in http:
        enum(http["h2UpgradePolicy"], h_at / "h2UpgradePolicy", ("DEFAULT", "DO_NOT_UPGRADE"), ("UPGRADE",))
    if "useClientProtocol" in http:
        boolean(http["useClientProtocol"], h_at / "useClientProtocol")  # clients and upstreams both speak HTTP/1.1
    keepalive = None
    if "tcpKeepalive" in tcp:
        k, k_at = mapping(tcp["tcpKeepalive"], t_at / "tcpKeepalive"), t_at / "tcpKeepalive"
        check_fields(k, k_at, ("time", "interval", "probes"))
        keepalive = TcpKeepalive(
            time=duration(k["time"], k_at / "time") if "time" in k else None,
            interval=duration(k["interval"], k_at / "interval") if "interval" in k else None,
            probes=integer(k["probes"], k_at / "probes", 1, 2**31 - 1) if "probes" in k else None,
        )
    return ConnectionPool(
        max_connections=_limit(tcp, "maxConnections", t_at),
        connect_timeout=duration(tcp["connectTimeout"], t_at / "connectTimeout")
        if "connectTimeout" in tcp else DEFAULT_CONNECT_TIMEOUT,
        tcp_keepalive=keepalive,
        idle_timeout=_idle_timeout(tcp, t_at, http, h_at),
        http1_max_pending_requests=_limit(http, "http1MaxPendingRequests", h_at),
        http2_max_requests=_limit(http, "http2MaxRequests", h_at),
        max_requests_per_connection=_limit(http, "maxRequestsPerConnection", h_at),
        max_retries=_limit(http, "maxRetries", h_at),
    )


def _idle_timeout(tcp: dict, t_at: At, http: dict, h_at: At) -> float | None:
    """The pooled connections' idle timeout, as Istio's applyConnectionPool picks it
    (pilot/pkg/networking/core/cluster_traffic_policy.go): http.idleTimeout when set, else
    tcp.idleTimeout — never the shorter of the two. 0 means none (Envoy: 0s disables it);
    None means unset (the pool's default)."""
    if "idleTimeout" in http:
        value, where = http["idleTimeout"], h_at / "idleTimeout"
        if _is_zero(value):  # the CRD's rule on http.idleTimeout: duration(self) >= duration('1ms')
            raise where.error(f"duration {value!r} is too short; Istio's CRD requires at least 1ms here. "
                              "To keep idle connections open, leave http.idleTimeout unset and set "
                              "tcp.idleTimeout: 0s (Istio uses it for HTTP too; 0s disables the timeout)")
        return duration(value, where)
    if "idleTimeout" in tcp:
        value, where = tcp["idleTimeout"], t_at / "idleTimeout"
        return 0.0 if _is_zero(value) else duration(value, where)  # no 1ms rule on tcp.idleTimeout
    return None


def _is_zero(value: Any) -> bool:
    try:
        return parse_duration(value) == 0
    except ValueError:
        return False  # duration() explains what is wrong with it


def _parse_outlier(value: Any, at: At) -> OutlierDetection:
    block = mapping(value, at)
    _refuse(block, at, "consecutiveErrors", "it is deprecated; Istio reads consecutive5xxErrors instead")
    _refuse(block, at, "outlierDetectionHttpErrorCodes",
            "Istio would count only these status codes as errors; minimesh counts 5xx (consecutive5xxErrors)")
    check_fields(block, at, ("consecutive5xxErrors", "consecutiveGatewayErrors", "consecutiveLocalOriginFailures",
                             "splitExternalLocalOriginErrors", "interval", "baseEjectionTime",
                             "maxEjectionPercent", "minHealthPercent"))
    d = OutlierDetection()

    def count(key, default):
        return integer(block[key], at / key, 0, 2**32 - 1) if key in block and block[key] is not None else default

    def seconds(key, default):
        return duration(block[key], at / key) if key in block else default

    # Istio passes maxEjectionPercent on only when above 0: 0 is unset, Envoy's default 10.
    percent = integer(block.get("maxEjectionPercent", 0), at / "maxEjectionPercent", 0, 100) or d.max_ejection_percent
    if percent < 50:  # one of two may go at 50 %; below, a small destination may never lose one
        said = "maxEjectionPercent" in block and block["maxEjectionPercent"] == percent
        (at / "maxEjectionPercent" if "maxEjectionPercent" in block else at).warn(
            f"maxEjectionPercent {percent}{'' if said else ' (Istio default; 0 means unset)'}: as on Istio, Envoy "
            f"ejects an endpoint only if the ejected share, it included, stays within {percent} %, so a destination "
            f"of fewer than {-(-100 // percent)} endpoints never loses one; set maxEjectionPercent: 50 or 100 "
            f"to let a small destination eject one")
    return OutlierDetection(
        consecutive_5xx_errors=count("consecutive5xxErrors", d.consecutive_5xx_errors),
        consecutive_gateway_errors=count("consecutiveGatewayErrors", d.consecutive_gateway_errors),
        consecutive_local_origin_failures=count("consecutiveLocalOriginFailures",
                                                d.consecutive_local_origin_failures),
        split_external_local_origin_errors=boolean(block.get("splitExternalLocalOriginErrors", False),
                                                   at / "splitExternalLocalOriginErrors"),
        interval=seconds("interval", d.interval),
        base_ejection_time=seconds("baseEjectionTime", d.base_ejection_time),
        max_ejection_percent=percent,
        min_health_percent=integer(block.get("minHealthPercent", d.min_health_percent),
                                   at / "minHealthPercent", 0, 100),
    )


def _parse_lb(value: Any, at: At) -> LoadBalancer:
    block = mapping(value, at)
    _refuse(block, at, "localityLbSetting",
            "minimesh runs every instance in one locality, so Istio's locality-aware failover has nothing to choose")
    _refuse(block, at, "zoneAwareLbSetting", "minimesh runs every instance in one zone")
    check_fields(block, at, ("simple", "consistentHash", "warmup", "warmupDurationSecs"))
    if "simple" in block and "consistentHash" in block:
        raise at.error("set either 'simple' or 'consistentHash', not both (Istio's schema: oneOf)")
    simple = None
    if "simple" in block:
        simple = string(block["simple"], at / "simple")
        simple = "LEAST_REQUEST" if simple == "LEAST_CONN" else enum(  # LEAST_CONN: Istio's deprecated spelling
            simple, at / "simple", LOAD_BALANCERS, ("UNSPECIFIED", "PASSTHROUGH"))
    consistent = _parse_hash(block["consistentHash"], at / "consistentHash") if "consistentHash" in block else None
    warmup, min_percent, aggression = None, 10.0, 1.0
    if "warmup" in block and "warmupDurationSecs" in block:
        raise (at / "warmupDurationSecs").error("set either 'warmup' or the deprecated 'warmupDurationSecs'")
    if "warmupDurationSecs" in block:
        warmup = duration(block["warmupDurationSecs"], at / "warmupDurationSecs")
    if "warmup" in block:
        w, w_at = mapping(block["warmup"], at / "warmup"), at / "warmup"
        check_fields(w, w_at, ("duration", "minimumPercent", "aggression"))
        warmup = duration(require(w, "duration", w_at), w_at / "duration")
        min_percent = number(w.get("minimumPercent", 10.0), w_at / "minimumPercent", 0, 100)
        aggression = number(w.get("aggression", 1.0), w_at / "aggression", 0.001)
    if warmup is not None and (consistent is not None or simple == "RANDOM"):
        raise (at / ("warmup" if "warmup" in block else "warmupDurationSecs")).error(
            "slow start works with ROUND_ROBIN and LEAST_REQUEST only, as in Envoy")
    return LoadBalancer(simple, consistent, warmup, min_percent, aggression)


def _parse_hash(value: Any, at: At) -> ConsistentHash:
    block = mapping(value, at)
    _refuse(block, at, "maglev", "minimesh implements ring hash only (ringHash); Istio would build a Maglev table")
    check_fields(block, at, ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName",
                             "ringHash", "minimumRingSize"))
    keys = [k for k in ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName") if k in block]
    if len(keys) != 1:
        raise at.error("name exactly one hash key: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName")
    if "ringHash" in block and "minimumRingSize" in block:
        raise (at / "minimumRingSize").error("set either ringHash.minimumRingSize or the deprecated minimumRingSize")
    ring = 1024
    if "minimumRingSize" in block:
        ring = integer(block["minimumRingSize"], at / "minimumRingSize", 0, 8_388_608) or 1024
    if "ringHash" in block:
        r = mapping(block["ringHash"], at / "ringHash")
        check_fields(r, at / "ringHash", ("minimumRingSize",))
        ring = integer(r.get("minimumRingSize", 1024), at / "ringHash" / "minimumRingSize", 0, 8_388_608) or 1024
    cookie = path = ttl = None
    if "httpCookie" in block:
        c, c_at = mapping(block["httpCookie"], at / "httpCookie"), at / "httpCookie"
        _refuse(c, c_at, "attributes", "Istio would add these attributes to the cookie it generates")
        check_fields(c, c_at, ("name", "path", "ttl"))
        cookie = string(require(c, "name", c_at), c_at / "name")
        path = string(c["path"], c_at / "path") if "path" in c else None
        ttl = (duration(c["ttl"], c_at / "ttl") if c["ttl"] != "0s" else 0.0) if "ttl" in c else None
    use_source_ip = boolean(block["useSourceIp"], at / "useSourceIp") if "useSourceIp" in block else False
    if "useSourceIp" in block and not use_source_ip:
        raise (at / "useSourceIp").error("useSourceIp: false names no hash key; set it true or name another key")
    return ConsistentHash(
        http_header_name=string(block["httpHeaderName"], at / "httpHeaderName").lower()
        if "httpHeaderName" in block else None,
        http_cookie=cookie, cookie_path=path, cookie_ttl=ttl, use_source_ip=use_source_ip,
        http_query_parameter_name=string(block["httpQueryParameterName"], at / "httpQueryParameterName")
        if "httpQueryParameterName" in block else None,
        minimum_ring_size=ring,
    )


def _parse_budget(value: Any, at: At) -> RetryBudget:
    block = mapping(value, at)
    _refuse(block, at, "budgetInterval", "Envoy's retry budget counts requests in flight, with no interval")
    check_fields(block, at, ("percent", "minRetryConcurrency"))
    d = RetryBudget()
    return RetryBudget(
        percent=number(block.get("percent", d.percent), at / "percent", 0, 100),
        min_retry_concurrency=integer(block.get("minRetryConcurrency", d.min_retry_concurrency),
                                      at / "minRetryConcurrency", 0, 2**32 - 1),
    )
