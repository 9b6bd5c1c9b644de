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
    minimesh_upstream_overflow_total              counter: requests and retries a circuit breaker
                                                  refused (Envoy's upstream_rq_pending_overflow,
                                                  upstream_rq_retry_overflow…), by `limit`
    minimesh_outlier_ejections_active             gauge: endpoints this proxy has ejected now
                                                  (Envoy's outlier_detection.ejections_active)

Labels, as Istio's: reporter ("source" for the caller's side — outbound and
gateway — "destination" for the callee's inbound side), source_workload,
source_version, destination_service, destination_version, response_code,
response_flags, connection_security_policy ("mutual_tls" or "none").

Each sidecar has its own registry (never the process-global one), made at
the first scrape: until then no prometheus-client is loaded at all. The
per-request counts are kept in plain dicts and handed to prometheus-client
only when /metrics is scraped (a custom collector): a labelled child's
`inc()` and `observe()` take a lock and walk the buckets in Python on every
request, several times the cost of adding to a list.
"""

from __future__ import annotations

from bisect import bisect_left

LABELS = ("reporter", "source_workload", "source_version", "destination_service", "destination_version",
          "response_code", "response_flags", "connection_security_policy")
# From "as fast as loopback gets" to "a timeout fired": Istio's own buckets for
# istio_request_duration_milliseconds, in seconds.
BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
BUCKETS_S = tuple(ms / 1000 for ms in BUCKETS_MS)

def _prometheus():
    """prometheus-client, imported at the first scrape: 5 MB a sidecar nobody scrapes never holds."""
    import prometheus_client

    # `_created` samples double the output and say nothing a learner needs.
    prometheus_client.disable_created_metrics()
    return prometheus_client


class RequestCounts:
    """minimesh_requests_total, minimesh_request_duration_seconds and minimesh_retries_total, from plain counts."""

    def __init__(self):
        self.rows: dict[tuple, list] = {}  # LABELS values -> [count, sum of seconds, count per bucket (+Inf last)]
        self.retries: dict[tuple, int] = {}  # (reporter, source_workload, destination_service) -> retries

    def observe(self, labels: tuple, duration_ms: float, retries: int) -> None:
        row = self.rows.get(labels)
        if row is None:
            row = self.rows[labels] = [0, 0.0, [0] * (len(BUCKETS_MS) + 1)]
        row[0] += 1
        row[1] += duration_ms / 1000
        row[2][bisect_left(BUCKETS_MS, duration_ms)] += 1  # the first bucket whose bound is >= the duration
        if retries:
            key = (labels[0], labels[1], labels[3])
            self.retries[key] = self.retries.get(key, 0) + retries

    def observe_all(self, labels: tuple, durations_ms: list[float], retries: int) -> None:
        """observe() for many requests under the same labels (their retries in all)."""
        row = self.rows.get(labels)
        if row is None:
            row = self.rows[labels] = [0, 0.0, [0] * (len(BUCKETS_MS) + 1)]
        row[0] += len(durations_ms)
        buckets = row[2]
        for duration_ms in durations_ms:
            row[1] += duration_ms / 1000
            buckets[bisect_left(BUCKETS_MS, duration_ms)] += 1
        if retries:
            key = (labels[0], labels[1], labels[3])
            self.retries[key] = self.retries.get(key, 0) + retries

    def describe(self):
        return []  # the families appear at the first request; nothing to check at registration

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        requests = CounterMetricFamily("minimesh_requests", "Requests, by who reported them and how they ended.",
                                       labels=LABELS)
        duration = HistogramMetricFamily("minimesh_request_duration_seconds",
                                         "Request duration in seconds, as the reporting proxy saw it.", labels=LABELS)
        for labels, (count, seconds, buckets) in list(self.rows.items()):
            requests.add_metric(labels, count)
            cumulative, running = [], 0
            for bound, n in zip((*BUCKETS_S, float("inf")), buckets):
                running += n
                cumulative.append((floatToGoString(bound), running))
            duration.add_metric(labels, cumulative, seconds)
        retries = CounterMetricFamily("minimesh_retries", "Attempts beyond the first one, made by the retry layer.",
                                      labels=("reporter", "source_workload", "destination_service"))
        for key, n in list(self.retries.items()):
            retries.add_metric(key, n)
        return [requests, duration, retries]


class CountsCollector:
    """A counter or gauge family read at scrape time from a dict {label values: number} another layer keeps."""

    def __init__(self, kind: str, name: str, documentation: str, labels: tuple[str, ...], counts):
        self.kind, self.name, self.documentation, self.labels, self.counts = kind, name, documentation, labels, counts

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        family = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        metric = family(self.name, self.documentation, labels=self.labels)
        counts = self.counts() if callable(self.counts) else self.counts
        for key, n in list(counts.items()):
            metric.add_metric(key, n)
        return [metric]


class MeshMetrics:
    """Every metric of one proxy, as plain numbers until /metrics is first scraped."""

    def __init__(self):
        self.counts = RequestCounts()
        self.observe = self.counts.observe  # count one request; `labels` are the values of LABELS, in order
        self.observe_all = self.counts.observe_all  # many requests under the same labels at once
        self.config_version = 0
        self.dropped = 0  # minimesh_telemetry_dropped_total
        self.certificate_expiry: float | None = None
        self._families = [  # (kind, name, documentation, label names, {label values: number} or a callable)
            ("gauge", "minimesh_config_version", "The control plane's config version this proxy runs.", (),
             lambda: {(): self.config_version}),
            ("counter", "minimesh_telemetry_dropped",
             "Request events dropped because the export queue to the control plane was full.", (),
             lambda: {(): self.dropped}),
            ("gauge", "minimesh_certificate_expiry_timestamp_seconds",
             "When this workload's certificate expires (Unix time).", (),
             lambda: {(): self.certificate_expiry} if self.certificate_expiry is not None else {}),
        ]
        self._registry = None

    def count_overflows(self, overflows) -> None:
        """minimesh_upstream_overflow_total from breaker.Breakers.overflows."""
        self._add(("counter", "minimesh_upstream_overflow",
                   "Requests (503 UO) and retries a connectionPool limit or retry budget refused, by destination "
                   "and limit.", ("destination_service", "destination_subset", "limit"), overflows))

    def count_ejections(self, active) -> None:
        """minimesh_outlier_ejections_active from outlier.Outliers (a callable: {labels: endpoints ejected now})."""
        self._add(("gauge", "minimesh_outlier_ejections_active",
                   "Endpoints this proxy's outlier detection has ejected now, by destination.",
                   ("destination_service", "destination_subset"), active))

    def _add(self, family: tuple) -> None:
        self._families.append(family)
        if self._registry is not None:  # scraped already: register it now
            self._registry.register(CountsCollector(*family))

    def count_dropped(self, n: int) -> None:
        self.dropped += n

    def set_config_version(self, version: int) -> None:
        self.config_version = version

    def set_certificate_expiry(self, not_after_epoch_s: float) -> None:
        """Called by the PKI code whenever it installs a leaf certificate (Unix time of notAfter)."""
        self.certificate_expiry = not_after_epoch_s

    @property
    def content_type(self) -> str:
        return _prometheus().CONTENT_TYPE_LATEST

    def exposition(self) -> bytes:
        """The Prometheus text format of everything above."""
        prometheus = _prometheus()
        if self._registry is None:
            self._registry = prometheus.CollectorRegistry(auto_describe=True)
            self._registry.register(self.counts)
            for family in self._families:
                self._registry.register(CountsCollector(*family))
        return prometheus.generate_latest(self._registry)
