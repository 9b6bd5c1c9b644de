"""VirtualService: how requests to a service are routed.

A VirtualService lists HTTP routes in order; the first whose match fits a
request wins. A route splits traffic over weighted destinations (a
destination is a service, optionally narrowed to a DestinationRule subset)
and carries the policies applied on the way: timeout, retries, fault
injection and mirroring.

Defaults are Istio's (1.24 and later): a route with no `retries` block
retries twice on connect-failure, refused-stream, unavailable and cancelled —
*not* on 503 (`DEFAULT_RETRY`; istio/istio PR 52111 dropped 503 because
retrying it re-sent POSTs that had already charged a card); a `retries` block
without `attempts` means *no* retries (Istio reads the unset number as 0); no
route timeout; a lone destination gets weight 100, and in a split a
destination without a weight gets 0. Weights are relative (weight / sum),
as on Istio since 1.15; a sum other than 100 is accepted with a warning.

Two surprises are kept, as Istio has them, and reported as warnings at
apply: a fault without `percentage` touches no request (istio/istio issues
36303, 39969), and so does a `percentage` of 0.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .fields import (
    At, boolean, check_fields, duration, integer, mapping, percentage, require, sequence, string,
)
from .cors import CorsPolicy, parse_cors_policy
from .headers import Headers, parse_headers, route_authority
from .match import HTTPMatchRequest, parse_match
from .redirect import HTTPDirectResponse, HTTPRedirect, parse_direct_response, parse_redirect
from .rewrite import HTTPRewrite, parse_rewrite
from .trafficpolicy import SERVICE_PORT  # noqa: F401 (minimesh services answer on one port, 80)
from .resource import Resource

# Envoy's retry conditions (x-envoy-retry-on and x-envoy-retry-grpc-on), as
# Istio passes them through from `retryOn`.
RETRY_ON_CONDITIONS = (
    "5xx", "gateway-error", "reset", "connect-failure", "envoy-ratelimited", "retriable-4xx",
    "refused-stream", "retriable-status-codes", "retriable-headers", "http3-post-connect-failure",
    "reset-before-request", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
)

_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Destination:
    host: str  # short service name
    subset: str | None = None
    port: int | None = None  # destination.port.number; a port the service lacks has no cluster (503 NC)


@dataclass(frozen=True)
class HTTPRouteDestination:
    destination: Destination
    weight: int
    headers: Headers | None = None  # this destination's own header operations (applied before the route's)


DEFAULT_RETRY_BACKOFF = 0.025  # seconds; Envoy's base interval, with jitter


@dataclass(frozen=True)
class HTTPRetry:
    attempts: int
    per_try_timeout: float | None
    retry_on: tuple[str, ...]
    # Status codes retried under "retriable-status-codes"; Istio takes them
    # as bare numbers in retryOn ("5xx,503").
    retriable_status_codes: tuple[int, ...] = ()
    backoff: float = DEFAULT_RETRY_BACKOFF  # Envoy's base_interval; the cap is 10 x this
    ignore_previous_hosts: bool = True  # Istio's default: a retry prefers a host not tried yet


# Istio >= 1.24: no 503 (PR 52111). Two retries on failures where the request
# provably never reached the app, or the gRPC status says "try again".
DEFAULT_RETRY = HTTPRetry(
    attempts=2,
    per_try_timeout=None,
    retry_on=("connect-failure", "refused-stream", "unavailable", "cancelled"),
)


@dataclass(frozen=True)
class FaultDelay:
    fixed_delay: float
    percentage: float  # 0 when neither `percentage` nor the deprecated `percent` is set: as Istio, no delay


@dataclass(frozen=True)
class FaultAbort:
    http_status: int
    percentage: float  # 0 without `percentage`: as Istio, no abort


@dataclass(frozen=True)
class HTTPFault:
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


@dataclass(frozen=True)
class HTTPMirrorPolicy:
    destination: Destination
    percentage: float = 100.0  # Istio: an absent percentage mirrors everything
    field: str = "mirror"  # where it was written: "mirror" or "mirrors[i]", for messages


@dataclass(frozen=True)
class HTTPRoute:
    name: str | None
    match: tuple[HTTPMatchRequest, ...]
    route: tuple[HTTPRouteDestination, ...]
    timeout: float | None = None
    retries: HTTPRetry | None = None  # None: not configured, Istio's default applies
    fault: HTTPFault | None = None
    mirrors: tuple["HTTPMirrorPolicy", ...] = ()  # `mirror` (+ mirrorPercentage) and `mirrors[]`, together
    rewrite: HTTPRewrite | None = None
    redirect: HTTPRedirect | None = None  # answered by the proxy: no `route`
    direct_response: HTTPDirectResponse | None = None  # answered by the proxy: no `route`
    headers: Headers | None = None
    cors_policy: CorsPolicy | None = None

    @property
    def retry_policy(self) -> HTTPRetry:
        """The retries actually in force: the configured ones, else Istio's default."""
        return self.retries if self.retries is not None else DEFAULT_RETRY

    def matches(self, method: str, path: str, headers: Mapping[str, str],
                source_labels: Mapping[str, str] | None = None, port: int | None = None) -> bool:
        return self.matching(method, path, headers, source_labels, port) is not None

    def matching(self, method: str, path: str, headers: Mapping[str, str],
                 source_labels: Mapping[str, str] | None = None, port: int | None = None):
        """The first match entry that fits (rewrite.uri depends on which), `()` for a route without match, or None."""
        if not self.match:
            return ()
        return next((m for m in self.match if m.matches(method, path, headers, source_labels, port)), None)


@dataclass(frozen=True, kw_only=True)
class VirtualService(Resource):
    kind = "VirtualService"
    hosts: tuple[str, ...]
    http: tuple[HTTPRoute, ...] = ()
    # `gateways`, each "NAMESPACE/NAME" or "mesh" (every sidecar); absent: ("mesh",), as Istio.
    gateways: tuple[str, ...] = ("mesh",)

    @property
    def for_mesh(self) -> bool:
        """Whether sidecars apply it (a VirtualService bound only to gateways is ingress-only)."""
        return "mesh" in self.gateways

    def route_for(self, method: str, path: str, headers: Mapping[str, str],
                  source_labels: Mapping[str, str] | None = None, port: int | None = None) -> HTTPRoute | None:
        """The first route whose match fits the request, as Istio evaluates them (in order)."""
        return next((r for r in self.http if r.matches(method, path, headers, source_labels, port)), None)


def parse_host(value: Any, at: At) -> str:
    host = string(value, at).lower()
    if "*" in host:
        raise at.error(f"wildcard host {host!r} is not supported by minimesh; name a service, like 'catalog'")
    if not _HOST.match(host):
        raise at.error(f"invalid host {host!r}; use a service name like 'catalog' (lowercase letters, digits, '-', '.')")
    return host  # as written: load.py reads it in the resource's namespace (namespaces.py)


def parse_destination(value: Any, at: At) -> Destination:
    block = mapping(value, at)
    check_fields(block, at, ("host", "subset", "port"))
    host = parse_host(require(block, "host", at), at / "host")
    subset = string(block["subset"], at / "subset") if "subset" in block else None
    port = None
    if "port" in block:
        where = at / "port"
        number = mapping(block["port"], where)
        check_fields(number, where, ("number",))
        port = integer(require(number, "number", where), where / "number", 1, 65535)
    return Destination(host, subset, port)


def parse_virtual_service(spec: dict, at: At, **meta) -> VirtualService:
    check_fields(spec, at, ("hosts", "http", "gateways"), ("exportTo", "tcp", "tls"))
    gateways = parse_gateways(spec, at, meta.get("namespace", "default"))
    # Bound only to gateways, hosts are matched against Host headers: wildcards are fine there.
    read_host = parse_host if "mesh" in gateways else parse_ingress_host
    hosts = tuple(read_host(h, at / "hosts" / i) for i, h in enumerate(sequence(require(spec, "hosts", at), at / "hosts")))
    if not hosts:
        raise (at / "hosts").error("at least one host is required, like ['catalog']")
    http = tuple(_parse_route(r, at / "http" / i) for i, r in enumerate(sequence(spec.get("http"), at / "http")))
    return VirtualService(hosts=hosts, http=http, gateways=gateways, **meta)


def parse_gateways(spec: dict, at: At, namespace: str) -> tuple[str, ...]:
    """`gateways`: 'mesh', or a Gateway as 'NAME' (in this namespace) or 'NAMESPACE/NAME'."""
    if "gateways" not in spec:
        return ("mesh",)
    names = []
    for i, item in enumerate(sequence(spec["gateways"], at / "gateways")):
        text = string(item, at / "gateways" / i)
        ns, slash, name = text.rpartition("/")
        if text != "mesh" and (not _HOST.match(name) or (slash and not _HOST.match(ns))):
            raise (at / "gateways" / i).error(f"{text!r} is not a Gateway reference; write 'mesh', 'NAME' or "
                                              "'NAMESPACE/NAME'")
        names.append(text if text == "mesh" else f"{ns or namespace}/{name}")
    if not names:
        raise (at / "gateways").error("an empty list binds to nothing; drop 'gateways' to mean the mesh")
    return tuple(names)


def parse_ingress_host(value: Any, at: At) -> str:
    """A host of a gateway-only VirtualService: '*', '*.example.com', or a name (short names are read in the namespace)."""
    host = string(value, at).lower()
    if host == "*" or (host.startswith("*.") and _HOST.match(host[2:])):
        return host
    return parse_host(host, at)


_ROUTE_FIELDS = ("name", "match", "route", "timeout", "retries", "fault", "mirror", "mirrorPercentage", "mirrors",
                 "rewrite", "redirect", "directResponse", "headers", "corsPolicy")
_ROUTE_ISTIO_ONLY = {
    "delegate": "Istio would hand the matching requests to the routes of another VirtualService",
    "mirrorPercent": "Istio would read it as the share of requests to mirror (deprecated: use mirrorPercentage)",
    "mirror_percent": "Istio would read it as the share of requests to mirror (deprecated: use mirrorPercentage)",
}
# What a route answered by the proxy itself (redirect, directResponse) cannot have beside it.
_NO_UPSTREAM = ("route", "timeout", "retries", "mirror", "mirrors", "rewrite")


def _parse_route(value: Any, at: At) -> HTTPRoute:
    block = mapping(value, at)
    check_fields(block, at, _ROUTE_FIELDS, _ROUTE_ISTIO_ONLY)
    name = string(block["name"], at / "name") if "name" in block else None
    match = tuple(parse_match(m, at / "match" / i) for i, m in enumerate(sequence(block.get("match"), at / "match")))
    local = [k for k in ("redirect", "directResponse") if k in block]
    if len(local) == 2:
        raise (at / "directResponse").error("set 'redirect' or 'directResponse', not both (Istio refuses both)")
    if local:
        clash = next((k for k in _NO_UPSTREAM if k in block), None)
        if clash is not None:
            raise (at / clash).error(f"'{clash}' cannot sit beside '{local[0]}': the proxy answers this route "
                                     f"itself, so there is no upstream (Istio refuses route and rewrite there, "
                                     f"and Envoy ignores the rest)")
        route = ()
    else:
        route = _parse_weighted(require(block, "route", at), at / "route")
    mirrors = _parse_mirrors(block, at)
    has_uri_match = bool(match) and all(m.uri is not None for m in match)
    rewrite = parse_rewrite(block["rewrite"], at / "rewrite", has_uri_match) if "rewrite" in block else None
    headers = parse_headers(block["headers"], at / "headers") if "headers" in block else None
    rewrite, headers = route_authority(rewrite, headers, at, answered_locally=bool(local))  # Host: a rewrite
    return HTTPRoute(
        name=name,
        match=match,
        route=route,
        timeout=duration(block["timeout"], at / "timeout") if "timeout" in block else None,
        retries=_parse_retries(block["retries"], at / "retries") if "retries" in block else None,
        fault=_parse_fault(block["fault"], at / "fault") if "fault" in block else None,
        mirrors=mirrors,
        rewrite=rewrite,
        redirect=parse_redirect(block["redirect"], at / "redirect") if "redirect" in block else None,
        direct_response=(parse_direct_response(block["directResponse"], at / "directResponse")
                         if "directResponse" in block else None),
        headers=headers,
        cors_policy=parse_cors_policy(block["corsPolicy"], at / "corsPolicy") if "corsPolicy" in block else None,
    )


def _parse_mirrors(block: dict, at: At) -> tuple[HTTPMirrorPolicy, ...]:
    """`mirror` with `mirrorPercentage`, and each of `mirrors[]` with its own `percentage`."""
    policies = []
    if "mirror" in block:
        destination = parse_destination(block["mirror"], at / "mirror")
        share = (percentage(block["mirrorPercentage"], at / "mirrorPercentage")
                 if "mirrorPercentage" in block else 100.0)
        policies.append(HTTPMirrorPolicy(destination, share))
    elif "mirrorPercentage" in block:
        raise (at / "mirrorPercentage").error("mirrorPercentage needs a 'mirror' destination beside it")
    for i, item in enumerate(sequence(block.get("mirrors"), at / "mirrors")):
        where = at / "mirrors" / i
        entry = mapping(item, where)
        check_fields(entry, where, ("destination", "percentage"))
        destination = parse_destination(require(entry, "destination", where), where / "destination")
        share = percentage(entry["percentage"], where / "percentage") if "percentage" in entry else 100.0
        policies.append(HTTPMirrorPolicy(destination, share, f"mirrors[{i}]"))
    return tuple(policies)


def _parse_weighted(value: Any, at: At) -> tuple[HTTPRouteDestination, ...]:
    items = sequence(value, at)
    if not items:
        raise at.error("at least one destination is required")
    routes = []
    for i, item in enumerate(items):
        block = mapping(item, at / i)
        check_fields(block, at / i, ("destination", "weight", "headers"))
        destination = parse_destination(require(block, "destination", at / i), at / i / "destination")
        default = 100 if len(items) == 1 else 0
        weight = integer(block.get("weight", default), at / i / "weight", 0, 2**31 - 1)
        headers = parse_headers(block["headers"], at / i / "headers") if "headers" in block else None
        routes.append(HTTPRouteDestination(destination, weight, headers))
    total = sum(r.weight for r in routes)
    if len(routes) > 1 and total == 0:
        raise at.error("every weight is 0; give at least one destination a weight above 0 "
                       "(Envoy refuses a split whose weights add up to 0, so Istio's route would not load)")
    if len(routes) > 1 and total != 100:
        # Istio >= 1.15 (istio/istio PR 39544): weights are relative, weight/sum each.
        shares = ", ".join(f"{r.weight * 100 / total:.4g}%" for r in routes)
        at.warn(f"weights add up to {total}, not 100: as on Istio they are relative, so the split is {shares}")
    return tuple(routes)


def _parse_retries(value: Any, at: At) -> HTTPRetry:
    block = mapping(value, at)
    # retryRemoteLocalities: minimesh has one locality, so "every other
    # locality" is none, whatever its value — as Istio with a single zone.
    check_fields(
        block, at, ("attempts", "perTryTimeout", "retryOn", "backoff", "retryIgnorePreviousHosts",
                    "retryRemoteLocalities"),
    )
    attempts = integer(block.get("attempts", 0), at / "attempts", 0)
    per_try = duration(block["perTryTimeout"], at / "perTryTimeout") if "perTryTimeout" in block else None
    backoff = duration(block["backoff"], at / "backoff") if "backoff" in block else DEFAULT_RETRY_BACKOFF
    ignore_previous = boolean(block.get("retryIgnorePreviousHosts", True), at / "retryIgnorePreviousHosts")
    if "retryRemoteLocalities" in block:
        boolean(block["retryRemoteLocalities"], at / "retryRemoteLocalities")
    if "retryOn" not in block:
        return HTTPRetry(attempts, per_try, DEFAULT_RETRY.retry_on, DEFAULT_RETRY.retriable_status_codes,
                         backoff, ignore_previous)
    conditions, codes = [], []
    for part in string(block["retryOn"], at / "retryOn").split(","):
        part = part.strip()
        if part.isdigit() and 100 <= int(part) <= 599:
            codes.append(int(part))
        elif part in RETRY_ON_CONDITIONS:
            conditions.append(part)
        else:
            raise (at / "retryOn").error(
                f"unknown retry condition {part!r}; use a comma-separated list of status codes (503) "
                f"or of: {', '.join(RETRY_ON_CONDITIONS)}"
            )
    # As Istio does: a bare status code only takes effect through this condition.
    if codes and "retriable-status-codes" not in conditions:
        conditions.append("retriable-status-codes")
    return HTTPRetry(attempts, per_try, tuple(conditions), tuple(codes), backoff, ignore_previous)


def _parse_fault(value: Any, at: At) -> HTTPFault:
    block = mapping(value, at)
    check_fields(block, at, ("delay", "abort"))
    delay = abort = None
    if "delay" in block:
        d, where = mapping(block["delay"], at / "delay"), at / "delay"
        check_fields(d, where, ("fixedDelay", "percentage", "percent"), {
            "exponentialDelay": "Istio does not implement it either (its API says so); use fixedDelay"})
        if "percent" in d and "percentage" in d:
            raise (where / "percent").error("set either 'percentage' or the deprecated 'percent', not both")
        share = (float(integer(d["percent"], where / "percent", 0, 100)) if "percent" in d
                 else _fault_percentage(d, where))
        delay = FaultDelay(
            fixed_delay=duration(require(d, "fixedDelay", where), where / "fixedDelay"),
            percentage=share,
        )
    if "abort" in block:
        a, where = mapping(block["abort"], at / "abort"), at / "abort"
        check_fields(a, where, ("httpStatus", "percentage"), {
            "grpcStatus": "Istio would abort gRPC calls with that gRPC status; minimesh's apps speak plain HTTP",
            "http2Error": "Istio would reset the HTTP/2 stream with that error; minimesh speaks HTTP/1.1"})
        abort = FaultAbort(
            http_status=integer(require(a, "httpStatus", where), where / "httpStatus", 200, 599),
            percentage=_fault_percentage(a, where),
        )
    if delay is None and abort is None:
        raise at.error("a fault needs a 'delay' or an 'abort'")
    return HTTPFault(delay, abort)


def _fault_percentage(block: dict, at: At) -> float:
    # Istio (and Envoy's fault filter as Istio configures it): without a
    # percentage the fault applies to 0 % of requests. Kept, and warned about.
    if "percentage" in block:
        share = percentage(block["percentage"], at / "percentage")
        if share == 0:
            at.warn("percentage.value is 0: this fault touches no request")
        return share
    if "percent" not in block:
        at.warn("no 'percentage': as on Istio, this fault touches no request; "
                "add `percentage: {value: 100}` to apply it to every request")
    return 0.0
