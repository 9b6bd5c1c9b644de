"""Export spans as Zipkin v2 JSON, when MINIMESH_ZIPKIN_URL names a collector.

The control plane already holds every span (sidecars send them with their
request events), so it is the one exporter: set MINIMESH_ZIPKIN_URL on the
control plane (`minimesh up` passes its environment on) to a Zipkin, Jaeger
or OpenTelemetry collector's Zipkin endpoint, e.g. http://127.0.0.1:9411 —
`/api/v2/spans` is added when the URL has no path. The JSON is
`ListOfSpans` of openzipkin's zipkin2-api.yaml. Like everything in
telemetry, exporting is best effort: a bounded queue, batches once a second,
a batch the collector refuses is dropped and counted.
"""

from __future__ import annotations

import logging

import aiohttp
from yarl import URL

from minimesh.batching import BatchSender

log = logging.getLogger("minimesh.control")

ZIPKIN_ENV = "MINIMESH_ZIPKIN_URL"
ZIPKIN_KIND = {"server": "SERVER", "client": "CLIENT", "attempt": "CLIENT", "gateway": "SERVER"}
MAX_QUEUE = 50_000


def to_zipkin(span: dict) -> dict:
    """One span in Zipkin v2's model (timestamps and durations in microseconds)."""
    tags = {"http.method": span.get("method") or "", "http.path": (span.get("path") or "").split("?", 1)[0],
            "http.status_code": str(span["status"]), "minimesh.instance": span["instance"],
            "minimesh.version": span["version"], "minimesh.reporter": span["kind"],
            "response_flags": ",".join(span.get("flags") or []) or "-"}
    if span.get("route"):
        tags["minimesh.route"] = span["route"]
    if not isinstance(span["status"], int) or span["status"] >= 500:
        tags["error"] = span.get("error") or f"status {span['status']}"
    out = {"traceId": span["trace_id"], "id": span["span_id"], "name": span["name"] or span["kind"],
           "kind": ZIPKIN_KIND.get(span["kind"], "CLIENT"),
           "timestamp": int(span["start"] * 1_000_000), "duration": max(1, int(span["duration_ms"] * 1000)),
           "localEndpoint": {"serviceName": span["service"]}, "tags": tags}
    if span.get("parent_id"):
        out["parentId"] = span["parent_id"]
    peer = (span.get("peer") or {}).get("service")
    if peer:
        out["remoteEndpoint"] = {"serviceName": peer}
    return out


def spans_url(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_path("/api/v2/spans")) if parsed.path in ("", "/") else url


class ZipkinExporter(BatchSender):
    task_name = "zipkin"

    def __init__(self, url: str, interval: float = 1.0):
        super().__init__(interval)
        self.url = spans_url(url)
        self._session: aiohttp.ClientSession | None = None
        self.queue: list[dict] = []
        self.sent = 0
        self.dropped = 0

    def add(self, spans: list[dict]) -> None:
        room = MAX_QUEUE - len(self.queue)
        self.dropped += max(0, len(spans) - room)
        self.queue.extend(to_zipkin(s) for s in spans[:max(0, room)])

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5), trust_env=False)
        super().start()
        log.info("exporting spans to Zipkin at %s", self.url)

    async def close(self) -> None:
        await self._session.close()

    async def flush(self) -> None:
        if not self.queue:
            return
        batch, self.queue = self.queue, []
        try:
            async with self._session.post(self.url, json=batch) as resp:
                if resp.status >= 300:
                    raise aiohttp.ClientError(f"collector answered {resp.status}")
            self.sent += len(batch)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            self.dropped += len(batch)
            log.warning("dropped %d spans: Zipkin collector %s: %s", len(batch), self.url, e)
