"""A sidecar's Prometheus metrics, served on its admin `/metrics`.

Named and labelled after Istio's standard metrics, so a learner's PromQL
carries over (`istio_requests_total` → `minimesh_requests_total`). One
difference: Istio's `istio_request_duration_milliseconds` counts in ms, while
Prometheus' own convention (and `promtool check metrics`) wants base units,
so ours is `minimesh_request_duration_seconds` — same buckets, divided by 1000.

    minimesh_requests_total                       counter
    minimesh_request_duration_seconds             histogram
    minimesh_retries_total                        counter: attempts beyond the first
    minimesh_config_version                       gauge: the config version in force
    minimesh_certificate_expiry_timestamp_seconds gauge: when our leaf certificate expires
                                                  (absent until the PKI code sets it)
    minimesh_telemetry_dropped_total              counter: events the exporter had to drop

Labels, as Istio's: reporter ("source" for the caller's side — outbound and
gateway — "destination" for the callee's inbound side), source_workload,
source_version, destination_service, destination_version, response_code,
response_flags, connection_security_policy ("mutual_tls" or "none").

Each sidecar has its own registry (never the process-global one), and the
labelled children are cached per label set: `labels()` is the expensive part
of prometheus-client, and this runs once per request.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LABELS = ("reporter", "source_workload", "source_version", "destination_service", "destination_version",
          "response_code", "response_flags", "connection_security_policy")
# From "as fast as loopback gets" to "a timeout fired": Istio's own buckets for
# istio_request_duration_milliseconds, in seconds.
BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
BUCKETS_S = tuple(ms / 1000 for ms in BUCKETS_MS)
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# `_created` samples double the output and say nothing a learner needs.
prometheus_client.disable_created_metrics()


class MeshMetrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("minimesh_requests", "Requests, by who reported them and how they ended.",
                                LABELS, registry=r)
        self.duration = Histogram("minimesh_request_duration_seconds",
                                  "Request duration in seconds, as the reporting proxy saw it.",
                                  LABELS, buckets=BUCKETS_S, registry=r)
        self.retries = Counter("minimesh_retries", "Attempts beyond the first one, made by the retry layer.",
                               ("reporter", "source_workload", "destination_service"), registry=r)
        self.config_version = Gauge("minimesh_config_version",
                                    "The control plane's config version this proxy runs.", registry=r)
        self.dropped = Counter("minimesh_telemetry_dropped",
                               "Request events dropped because the export queue to the control plane was full.",
                               registry=r)
        self._cert_expiry: Gauge | None = None
        self._children: dict[tuple, tuple] = {}
        self._retry_children: dict[tuple, object] = {}

    def observe(self, labels: tuple, duration_ms: float, retries: int) -> None:
        """Count one request; `labels` are the values of LABELS, in order."""
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = (self.requests.labels(*labels), self.duration.labels(*labels))
        children[0].inc()
        children[1].observe(duration_ms / 1000)
        if retries:
            key = (labels[0], labels[1], labels[3])
            child = self._retry_children.get(key)
            if child is None:
                child = self._retry_children[key] = self.retries.labels(*key)
            child.inc(retries)

    def set_config_version(self, version: int) -> None:
        self.config_version.set(version)

    def set_certificate_expiry(self, not_after_epoch_s: float) -> None:
        """Called by the PKI code whenever it installs a leaf certificate (Unix time of notAfter)."""
        if self._cert_expiry is None:
            self._cert_expiry = Gauge("minimesh_certificate_expiry_timestamp_seconds",
                                      "When this workload's certificate expires (Unix time).", registry=self.registry)
        self._cert_expiry.set(not_after_epoch_s)

    def exposition(self) -> bytes:
        """The Prometheus text format of everything above."""
        return generate_latest(self.registry)
