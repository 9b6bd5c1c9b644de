"""Outlier detection: stop sending to an endpoint that keeps failing, for a while.

Theory of operation. Retries route *around* a bad instance one request at a
time; outlier detection takes it *out*. Each calling sidecar watches the
answers it gets from each endpoint of a destination (Envoy counts per
cluster, per calling proxy — there is no global view, and none is needed):

    consecutive5xxErrors          N 5xx answers in a row -> eject
    consecutiveGatewayErrors      N 502/503/504 in a row -> eject
    consecutiveLocalOriginFailures  with splitExternalLocalOriginErrors: N connect
                                  failures / resets / timeouts in a row -> eject. Without
                                  the split, such a failure counts as a 503 (or a 504 for a
                                  timeout) toward the two counters above, as Envoy does.

Any other answer resets the counters. An ejected endpoint gets no traffic
for baseEjectionTime × (times it has been ejected); the sweep that runs
every `interval` returns it when its time is up, and lowers the multiplier
of an endpoint that stayed healthy for an interval. Two guards:

    maxEjectionPercent  never eject more than this share of the endpoints
                        (Envoy: but always allow one)
    minHealthPercent    when fewer than this share are healthy, ignore ejections
                        and balance over every endpoint: Envoy's "panic mode" —
                        better to send to sick instances than to none.
                        Istio's default is 0: no panic, a fully ejected
                        destination answers 503 UH.

What a detector has counted lives as long as its cluster's config. Envoy
keeps a cluster whose config is unchanged when the control plane sends it
again (the update is blocked by its hash), and builds a changed one anew,
with a new detector; a removed cluster goes with its detector. So deleting
the DestinationRule, or its outlierDetection, puts every ejected endpoint
back at once, and applying it again counts from zero; re-applying it
unchanged keeps every ejection as it was (`stale`, run on each snapshot).

What it has counted about one endpoint lives as long as the endpoint is in the
cluster. Envoy's detector follows its cluster's membership: a host that leaves
(its instance deregistered, the service scaled down, its labels no longer
those of the subset) is dropped with its state — an ejected one stops counting
toward maxEjectionPercent and stops being reported at once, with no "returned"
event — and a host that joins, even on an address that was ejected before,
starts afresh (`departed`, run on each snapshot). An answer from a departed
endpoint still on its way counts for nothing: Envoy ignores an ejection of a
host no longer in the cluster. (Envoy keeps a removed host only while active
health checking still passes it; Istio configures none.)

Each endpoint's state is a small machine, as a table below. Time is
injected (`clock`), so tests step it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Awaitable

from minimesh.errors import MeshError, UpstreamConnectFailure, UpstreamReset
from minimesh.proxy.message import Request, Response, Service

log = logging.getLogger("minimesh.outlier")


class State(Enum):
    HEALTHY = "healthy"
    EJECTED = "ejected"


# (state, event) -> next state. Anything not listed leaves the state as it is.
TRANSITIONS = {
    (State.HEALTHY, "threshold"): State.EJECTED,  # a consecutive-error count reached its limit (and the cap allows)
    (State.EJECTED, "time_up"): State.HEALTHY,  # the sweep found its ejection time over
}


@dataclass
class Host:
    state: State = State.HEALTHY
    consecutive_5xx: int = 0
    consecutive_gateway: int = 0
    consecutive_local: int = 0
    ejections: int = 0  # the multiplier of baseEjectionTime
    ejected_at: float = 0.0
    until: float = 0.0  # monotonic time its ejection ends
    reason: str = ""
    instance: str = ""


@dataclass
class Detector:
    """One destination cluster's endpoints, as one calling sidecar sees them."""

    service: str
    subset: str | None
    config: object = None  # the cluster's trafficPolicy it counts under; a changed one starts afresh (`stale`)
    hosts: dict[str, Host] = field(default_factory=dict)
    members: frozenset[str] = frozenset()  # its cluster's endpoint addresses now (`departed`)
    next_sweep: float | None = None

    def ejected(self) -> set[str]:
        return {a for a, h in self.hosts.items() if h.state is State.EJECTED}


def classify(status: int | None, failure: str | None, split: bool) -> tuple[str, int | None]:
    """('external', status) for an upstream's answer, ('local', None) for a failure with none.

    Without the split, a local failure is counted as Envoy maps it: a timeout as 504, others as 503.
    """
    if failure is None:
        return "external", status
    if split:
        return "local", None
    return "external", 504 if failure == "timeout" else 503


def count(policy, host: Host, status: int | None, failure: str | None) -> str | None:
    """Pure: add one outcome to `host`'s counters; returns which threshold it reached, if any."""
    origin, code = classify(status, failure, policy.split_external_local_origin_errors)
    if origin == "local":
        host.consecutive_local += 1
        if policy.consecutive_local_origin_failures and host.consecutive_local >= policy.consecutive_local_origin_failures:
            return f"consecutiveLocalOriginFailures {policy.consecutive_local_origin_failures}"
        return None
    if failure is None:
        host.consecutive_local = 0  # an answer arrived: the connection side works
    if code is not None and code >= 500:
        host.consecutive_5xx += 1
    else:
        host.consecutive_5xx = 0
    if code in (502, 503, 504):
        host.consecutive_gateway += 1
    else:
        host.consecutive_gateway = 0
    if policy.consecutive_5xx_errors and host.consecutive_5xx >= policy.consecutive_5xx_errors:
        return f"consecutive5xxErrors {policy.consecutive_5xx_errors}"
    if policy.consecutive_gateway_errors and host.consecutive_gateway >= policy.consecutive_gateway_errors:
        return f"consecutiveGatewayErrors {policy.consecutive_gateway_errors}"
    return None


def stale(detectors: dict[str, Detector], configs: dict) -> list[str]:
    """Pure: the detectors a new snapshot ends, given each cluster's trafficPolicy in it (by cluster name).

    Envoy hashes a cluster's whole config, so not only an outlierDetection change rebuilds it: Istio
    writes loadBalancer, connectionPool, tls and minHealthPercent into the same Envoy cluster, and a
    change to any of them is a new cluster with a new detector. A cluster gone, or one without
    outlierDetection, has none.
    """
    return [name for name, d in detectors.items()
            if (config := configs.get(name)) is None or config.outlier_detection is None or config != d.config]


def departed(hosts, members) -> list[str]:
    """Pure: the hosts a new endpoint set ends — each one whose address is no longer among `members`.

    Envoy's member-update callback erases a removed host's monitor; a re-added host gets a new one.
    """
    return sorted(address for address in hosts if address not in members)


def may_eject(policy, ejected: int, total: int) -> bool:
    """maxEjectionPercent, with Envoy's rule that one host may always be ejected."""
    if ejected == 0:
        return total > 0
    return (ejected + 1) * 100 <= policy.max_ejection_percent * total


def in_panic(policy, healthy: int, total: int) -> bool:
    """minHealthPercent: below it, the balancer ignores ejections (Envoy's healthy_panic_threshold)."""
    return total > 0 and healthy * 100 < policy.min_health_percent * total


class Outliers:
    """Every destination's detector on this sidecar; the balancer asks it, the attempt layer tells it."""

    def __init__(self, clock=time.monotonic, wall=time.time, emit=None):
        self.clock = clock
        self.wall = wall  # for the control plane's "ejected until" (wall-clock)
        self.detectors: dict[str, Detector] = {}
        self.emit = emit  # called with each ejection/return event (a dict): the access log line
        self.changed = False  # an ejection or return since the control plane last heard

    def detector(self, cluster) -> Detector:
        d = self.detectors.get(cluster.name)
        if d is None or (d.config is not cluster.policy and d.config != cluster.policy):
            if d is not None and d.ejected():
                self.changed = True  # the old ejections end with the old settings
            d = self.detectors[cluster.name] = Detector(cluster.service, cluster.subset, cluster.policy,
                                                        members=frozenset(e.address for e in cluster.endpoints))
        return d

    def sync(self, config) -> None:
        """A new snapshot (a MeshConfig) is in force: end the detectors whose cluster it changed (`stale`),
        and in the others, the endpoints that left their cluster (`departed`)."""
        clusters = {c.name: c for c in config.clusters.values()}
        for name in stale(self.detectors, {name: c.policy for name, c in clusters.items()}):
            d = self.detectors.pop(name)
            self._ended(d, "outlier_detector_ended", sorted(d.ejected()))
        for name, d in self.detectors.items():
            cluster = clusters[name]
            d.config = cluster.policy  # equal, but the new snapshot's: the per-request check is then `is`
            d.members = frozenset(e.address for e in cluster.endpoints)
            gone = departed(d.hosts, d.members)
            ejected = d.ejected()
            for address in gone:
                del d.hosts[address]
            self._ended(d, "outlier_hosts_removed", [a for a in gone if a in ejected])

    def _ended(self, d: Detector, event: str, ejected: list[str]) -> None:
        """Ejections that ended with their detector or their host, not by time: no "returned" event."""
        if not ejected:
            return
        self.changed = True  # `minimesh status` hears they are over
        # A log line, not an access-log or tap line: Envoy's outlier event log says nothing either.
        log.info("%s", json.dumps({"event": event, "service": d.service, "subset": d.subset,
                                   "endpoints": ejected}, separators=(",", ":")))

    def healthy(self, cluster, endpoints):
        """The endpoints to balance over: the ejected ones left out, unless in panic."""
        policy = cluster.policy.outlier_detection if cluster.policy is not None else None
        if policy is None:
            return endpoints
        d = self.detector(cluster)
        self._sweep(d, policy)
        ejected = d.ejected()
        if not ejected:
            return endpoints
        healthy = [e for e in endpoints if e.address not in ejected]
        if in_panic(policy, len(healthy), len(endpoints)):
            return endpoints
        return healthy

    def observe(self, cluster, endpoint, status: int | None, failure: str | None) -> None:
        """One attempt's outcome at `endpoint` (an Endpoint of `cluster`)."""
        policy = cluster.policy.outlier_detection if cluster.policy is not None else None
        if policy is None:
            return
        d = self.detector(cluster)
        if endpoint.address not in d.members:
            return  # it left the cluster while this attempt was on its way (`departed`)
        host = d.hosts.get(endpoint.address)
        if host is None:
            host = d.hosts[endpoint.address] = Host(instance=endpoint.instance)
        reached = count(policy, host, status, failure)
        if reached is None or host.state is State.EJECTED:
            return
        if not may_eject(policy, len(d.ejected()), len(d.members)):
            return
        now = self.clock()
        host.state = TRANSITIONS[(host.state, "threshold")]
        host.ejections += 1
        host.ejected_at, host.until, host.reason = now, now + policy.base_ejection_time * host.ejections, reached
        host.consecutive_5xx = host.consecutive_gateway = host.consecutive_local = 0
        if d.next_sweep is None:
            d.next_sweep = now + policy.interval
        self._event(d, endpoint.address, host, "ejected")

    def _sweep(self, d: Detector, policy) -> None:
        now = self.clock()
        if d.next_sweep is None or now < d.next_sweep:
            return
        # However many intervals passed, each is a sweep (a quiet destination catches up at once).
        sweeps = 1 + math.floor((now - d.next_sweep) / policy.interval)
        d.next_sweep += sweeps * policy.interval
        for address, host in d.hosts.items():
            if host.state is State.EJECTED and now >= host.until:
                host.state = TRANSITIONS[(host.state, "time_up")]
                self._event(d, address, host, "returned")
            elif host.state is State.HEALTHY and host.ejections:
                host.ejections = max(0, host.ejections - sweeps)  # Envoy: healthy for an interval, one less
        if not d.ejected() and not any(h.ejections for h in d.hosts.values()):
            d.next_sweep = None

    def _event(self, d: Detector, address: str, host: Host, what: str) -> None:
        self.changed = True
        event = {"event": f"outlier_{what}", "service": d.service, "subset": d.subset, "endpoint": address,
                 "upstream_instance": host.instance, "reason": host.reason, "ejections": host.ejections,
                 "ejection_s": round(host.until - host.ejected_at, 3)}
        log.info("%s", json.dumps(event, separators=(",", ":")))
        if self.emit is not None:
            self.emit(event)

    def active(self) -> dict[tuple[str, str], int]:
        """minimesh_outlier_ejections_active: endpoints ejected now, per (service, subset)."""
        out: dict[tuple[str, str], int] = {}
        for d in self.detectors.values():
            out[(d.service, d.subset or "")] = len(d.ejected())
        return out

    def report(self) -> list[dict]:
        """What this sidecar has ejected now, for the control plane (`minimesh status`)."""
        now, wall = self.clock(), self.wall()
        return [{"service": d.service, "subset": d.subset, "instance": h.instance, "endpoint": a,
                 "until": round(wall + max(0.0, h.until - now), 3), "reason": h.reason}
                for d in self.detectors.values() for a, h in d.hosts.items() if h.state is State.EJECTED]


_FAILURE_OF = {UpstreamConnectFailure: "connect-failure", UpstreamReset: "reset"}


class DetectOutliers:
    """Layer: tell outlier detection how each attempt at an endpoint ended."""

    def __init__(self, inner: Service, outliers: Outliers):
        self.inner = inner
        self.outliers = outliers

    def __call__(self, request: Request) -> Awaitable[Response]:
        journey = request.journey
        cluster = journey.cluster
        if cluster.policy is None or cluster.policy.outlier_detection is None:
            return self.inner(request)  # no outlier detection: the next layer's awaitable, no frame of ours
        return self._observed(request, journey, cluster)

    async def _observed(self, request: Request, journey, cluster) -> Response:
        endpoint = next((e for e in cluster.endpoints if e.address == journey.endpoint), None)
        try:
            response = await self.inner(request)
        except MeshError as e:
            if endpoint is not None and type(e) in _FAILURE_OF:
                self.outliers.observe(cluster, endpoint, None, _FAILURE_OF[type(e)])
            raise
        except asyncio.CancelledError:
            # The per-try timeout (retry.py) cancels the attempt: Envoy counts that as a
            # local-origin timeout (a 504 without the split).
            if endpoint is not None and journey.attempts and journey.attempts[-1].status is None:
                self.outliers.observe(cluster, endpoint, None, "timeout")
            raise
        if endpoint is not None:
            self.outliers.observe(cluster, endpoint, response.status, None)
        return response
