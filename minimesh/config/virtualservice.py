"""VirtualService: how requests to a service are routed.

A VirtualService lists HTTP routes in order; the first whose match fits a
request wins. A route splits traffic over weighted destinations (a
destination is a service, optionally narrowed to a DestinationRule subset)
and carries the policies applied on the way: timeout, retries, fault
injection and mirroring.

Defaults are Istio's: a route with no `retries` block retries twice on
connection failures and 503 (`DEFAULT_RETRY`); a `retries` block without
`attempts` means *no* retries (Istio reads the unset number as 0); no route
timeout; a lone destination gets weight 100, and in a split a destination
without a weight gets 0.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .fields import (
    At, check_fields, duration, integer, mapping, percentage, require, sequence, string,
)
from .match import HTTPMatchRequest, parse_match
from .resource import Resource, short_host

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


@dataclass(frozen=True)
class HTTPRouteDestination:
    destination: Destination
    weight: int


@dataclass(frozen=True)
class HTTPRetry:
    attempts: int
    per_try_timeout: float | None
    retry_on: tuple[str, ...]
    # Status codes retried under "retriable-status-codes"; Istio takes them
    # as bare numbers in retryOn ("5xx,503").
    retriable_status_codes: tuple[int, ...] = ()


DEFAULT_RETRY = HTTPRetry(
    attempts=2,
    per_try_timeout=None,
    retry_on=("connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"),
    retriable_status_codes=(503,),
)
DEFAULT_RETRY_BACKOFF = 0.025  # seconds; Envoy's base interval, with jitter


@dataclass(frozen=True)
class FaultDelay:
    fixed_delay: float
    percentage: float


@dataclass(frozen=True)
class FaultAbort:
    http_status: int
    percentage: float


@dataclass(frozen=True)
class HTTPFault:
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


@dataclass(frozen=True)
class HTTPRoute:
    name: str | None
    match: tuple[HTTPMatchRequest, ...]
    route: tuple[HTTPRouteDestination, ...]
    timeout: float | None = None
    retries: HTTPRetry | None = None  # None: not configured, Istio's default applies
    fault: HTTPFault | None = None
    mirror: Destination | None = None
    mirror_percentage: float | None = None  # 100 when mirror is set without one

    @property
    def retry_policy(self) -> HTTPRetry:
        """The retries actually in force: the configured ones, else Istio's default."""
        return self.retries if self.retries is not None else DEFAULT_RETRY

    def matches(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        return not self.match or any(m.matches(method, path, headers) for m in self.match)


@dataclass(frozen=True, kw_only=True)
class VirtualService(Resource):
    kind = "VirtualService"
    hosts: tuple[str, ...]
    http: tuple[HTTPRoute, ...] = ()

    def route_for(self, method: str, path: str, headers: Mapping[str, str]) -> HTTPRoute | None:
        """The first route whose match fits the request, as Istio evaluates them (in order)."""
        return next((r for r in self.http if r.matches(method, path, headers)), None)


def parse_host(value: Any, at: At) -> str:
    host = string(value, at).lower()
    if "*" in host:
        raise at.error(f"wildcard host {host!r} is not supported by minimesh; name a service, like 'catalog'")
    if not _HOST.match(host):
        raise at.error(f"invalid host {host!r}; use a service name like 'catalog' (lowercase letters, digits, '-', '.')")
    return short_host(host)


def parse_destination(value: Any, at: At) -> Destination:
    block = mapping(value, at)
    check_fields(block, at, ("host", "subset"), ("port",))
    host = parse_host(require(block, "host", at), at / "host")
    subset = string(block["subset"], at / "subset") if "subset" in block else None
    return Destination(host, subset)


def parse_virtual_service(spec: dict, at: At, **meta) -> VirtualService:
    check_fields(spec, at, ("hosts", "http"), ("gateways", "exportTo", "tcp", "tls"))
    hosts = tuple(parse_host(h, at / "hosts" / i) for i, h in enumerate(sequence(require(spec, "hosts", at), at / "hosts")))
    if not hosts:
        raise (at / "hosts").error("at least one host is required, like ['catalog']")
    http = tuple(_parse_route(r, at / "http" / i) for i, r in enumerate(sequence(spec.get("http"), at / "http")))
    return VirtualService(hosts=hosts, http=http, **meta)


_ROUTE_FIELDS = ("name", "match", "route", "timeout", "retries", "fault", "mirror", "mirrorPercentage")
_ROUTE_ISTIO_ONLY = (
    "corsPolicy", "delegate", "directResponse", "headers", "mirrorPercent", "mirror_percent",
    "mirrors", "redirect", "rewrite",
)


def _parse_route(value: Any, at: At) -> HTTPRoute:
    block = mapping(value, at)
    check_fields(block, at, _ROUTE_FIELDS, _ROUTE_ISTIO_ONLY)
    name = string(block["name"], at / "name") if "name" in block else None
    match = tuple(parse_match(m, at / "match" / i) for i, m in enumerate(sequence(block.get("match"), at / "match")))
    route = _parse_weighted(require(block, "route", at), at / "route")
    mirror = parse_destination(block["mirror"], at / "mirror") if "mirror" in block else None
    mirror_percentage = None
    if "mirrorPercentage" in block:
        if mirror is None:
            raise (at / "mirrorPercentage").error("mirrorPercentage needs a 'mirror' destination beside it")
        mirror_percentage = percentage(block["mirrorPercentage"], at / "mirrorPercentage")
    elif mirror is not None:
        mirror_percentage = 100.0
    return HTTPRoute(
        name=name,
        match=match,
        route=route,
        timeout=duration(block["timeout"], at / "timeout") if "timeout" in block else None,
        retries=_parse_retries(block["retries"], at / "retries") if "retries" in block else None,
        fault=_parse_fault(block["fault"], at / "fault") if "fault" in block else None,
        mirror=mirror,
        mirror_percentage=mirror_percentage,
    )


def _parse_weighted(value: Any, at: At) -> tuple[HTTPRouteDestination, ...]:
    items = sequence(value, at)
    if not items:
        raise at.error("at least one destination is required")
    routes = []
    for i, item in enumerate(items):
        block = mapping(item, at / i)
        check_fields(block, at / i, ("destination", "weight"), ("headers",))
        destination = parse_destination(require(block, "destination", at / i), at / i / "destination")
        default = 100 if len(items) == 1 else 0
        weight = integer(block.get("weight", default), at / i / "weight", 0, 100)
        routes.append(HTTPRouteDestination(destination, weight))
    total = sum(r.weight for r in routes)
    if len(routes) > 1 and total != 100:
        raise at.error(f"weights add up to {total}; make them add up to 100")
    return tuple(routes)


def _parse_retries(value: Any, at: At) -> HTTPRetry:
    block = mapping(value, at)
    check_fields(
        block, at, ("attempts", "perTryTimeout", "retryOn"),
        ("backoff", "retryIgnorePreviousHosts", "retryRemoteLocalities"),
    )
    attempts = integer(block.get("attempts", 0), at / "attempts", 0)
    per_try = duration(block["perTryTimeout"], at / "perTryTimeout") if "perTryTimeout" in block else None
    if "retryOn" not in block:
        return HTTPRetry(attempts, per_try, DEFAULT_RETRY.retry_on, DEFAULT_RETRY.retriable_status_codes)
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
    return HTTPRetry(attempts, per_try, tuple(conditions), tuple(codes))


def _parse_fault(value: Any, at: At) -> HTTPFault:
    block = mapping(value, at)
    check_fields(block, at, ("delay", "abort"))
    delay = abort = None
    if "delay" in block:
        d, where = mapping(block["delay"], at / "delay"), at / "delay"
        check_fields(d, where, ("fixedDelay", "percentage"), ("exponentialDelay", "percent"))
        delay = FaultDelay(
            fixed_delay=duration(require(d, "fixedDelay", where), where / "fixedDelay"),
            percentage=_fault_percentage(d, where),
        )
    if "abort" in block:
        a, where = mapping(block["abort"], at / "abort"), at / "abort"
        check_fields(a, where, ("httpStatus", "percentage"), ("grpcStatus", "http2Error"))
        abort = FaultAbort(
            http_status=integer(require(a, "httpStatus", where), where / "httpStatus", 200, 599),
            percentage=_fault_percentage(a, where),
        )
    if delay is None and abort is None:
        raise at.error("a fault needs a 'delay' or an 'abort'")
    return HTTPFault(delay, abort)


def _fault_percentage(block: dict, at: At) -> float:
    # Istio: without a percentage, every request gets the fault.
    return percentage(block["percentage"], at / "percentage") if "percentage" in block else 100.0
