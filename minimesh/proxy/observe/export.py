"""Sends a sidecar's rollups and records to the control plane's POST /v1/telemetry.

A few times a second (EXPORT_INTERVAL) the exporter sends one batch:

    {"node": "web-v1-0",
     "tallies": [{"key": [...], "requests": 12, "ok": 12, ..., "latency": [[bin, n], ...]}, ...],
     "events":  [record, record, ...]}

tallies are the rollups counted since the last batch (rollup.py); events are
the records (telemetry.py) of sampled traces, and of every request while
someone taps. The control plane answers `{"accepted": n, "tap": true|false}`:
whether anyone is tapping. Under traffic a sidecar hears that every interval,
so a tap reaches it within a fraction of a second. An idle sidecar sends
nothing and hears nothing, so when a request comes after a quiet spell it
keeps the request (unencoded) until its next batch is answered: when the
answer says "tap", it sends the record after all, and the first tap line
still arrives well within a second.

`add` and `hold` never block and never do I/O; a full queue drops the record
and counts it in minimesh_telemetry_dropped_total. A batch the control plane
does not take (down, restarting) is dropped too: telemetry is best effort,
traffic is not. Except for the mesh's own events (an outlier ejection or
return, telemetry.py `mesh_event`): they are rare, and a tap that shows a
return without the ejection before it tells the learner something false, so
a batch that fails keeps them (up to MAX_KEPT_EVENTS) for the next one, in
their order and ahead of what came since.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

from minimesh.batching import BatchSender
from minimesh.proxy.control_channel import ControlCallFailed, ControlChannel
from minimesh.proxy.observe.rollup import Tallies

log = logging.getLogger("minimesh.proxy")

EXPORT_INTERVAL = 0.2  # seconds: a tap line shows up well within a second
MAX_QUEUE = 20_000
MAX_KEPT_EVENTS = 256  # mesh events kept across failed batches (each a few hundred bytes)
MESH_EVENT = '{"event":'  # how a mesh event's record begins (telemetry.py `mesh_event`); a request's never does
MAX_BATCH = 2_000
# One encoder for every record and batch: json.dumps with options builds a new one per call.
to_json = json.JSONEncoder(separators=(",", ":")).encode


class TelemetryExporter(BatchSender):
    task_name = "telemetry"

    def __init__(self, control_url: str, node: str, metrics, interval: float = EXPORT_INTERVAL,
                 max_queue: int = MAX_QUEUE, channel: ControlChannel | None = None):
        super().__init__(interval)
        self.channel = channel or ControlChannel(control_url)  # the sidecar's, with its TLS (control_channel.py)
        self._own_channel = channel is None
        self.node = to_json(node)
        self.metrics = metrics
        self.max_queue = max_queue
        self.tallies = Tallies()
        self.queue: list[str] = []  # records, already JSON
        self.held: list[tuple] = []  # (make_record, args): this interval's requests nobody asked for yet
        self.tapping = False  # what the control plane said last: is anyone tapping?
        self.heard_until = 0.0  # time.time() until which that answer counts as news
        self.sent = 0
        self.dropped = 0
        self.count: Callable[[], None] = lambda: None  # RequestTelemetry.count: add up what was noted
        self.outliers = None  # outlier.Outliers: what we have ejected, sent when it changed (`minimesh status`)

    def add(self, record: str) -> None:
        if len(self.queue) >= self.max_queue:
            self._drop(1)
            return
        self.queue.append(record)

    def hold(self, make_record: Callable[..., str], *args) -> None:
        """Keep a request's makings, to send only if the next answer says someone is tapping.

        Only while the last answer is old news (heard_until): holding every
        request under load would keep thousands of objects alive for the
        garbage collector to walk, for nothing.
        """
        if len(self.held) < self.max_queue:
            self.held.append((make_record, args))

    def _drop(self, n: int) -> None:
        self.dropped += n
        self.metrics.count_dropped(n)

    def status(self) -> dict:
        """For the admin /stats: is anyone tapping, as last heard, and how long ago."""
        return {"tapping": self.tapping, "heard_s_ago": round(time.time() - self.heard_until + 2 * self.interval, 3)
                if self.heard_until else None, "records_sent": self.sent, "queued": len(self.queue),
                "held": len(self.held), "dropped": self.dropped}

    async def close(self) -> None:
        if self._own_channel:
            await self.channel.close()

    async def flush(self) -> None:
        held, self.held = self.held, []
        self.count()
        tallies = self.tallies.drain()
        if not (tallies or self.queue):
            return
        first = True
        while first or self.queue:
            batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
            if not await self._post(batch, tallies if first else []):
                return
            first = False
        if self.tapping and held:  # a tap began since these requests finished: send them after all
            await self._post([make(*args) for make, args in held], [])

    async def _post(self, events: list[str], tallies: list[dict]) -> bool:
        """Send one batch; when it is not taken, its records are dropped and counted, its mesh events kept."""
        # The records are JSON already: the batch is spliced together, not encoded again.
        body = f'{{"node":{self.node},"tallies":{to_json(tallies)},"events":[{",".join(events)}]'
        reported = self.outliers is not None and self.outliers.changed
        if reported:
            self.outliers.changed = False
            body += f',"ejections":{to_json(self.outliers.report())}'
        body += "}"
        try:
            reply = await self.channel.call("POST", "/v1/telemetry", body.encode(), timeout=5)
            status, answer = reply.status, (reply.json() if reply.status < 400 else reply.text()[:200])
        except (ControlCallFailed, ValueError) as e:
            status, answer = None, str(e)
        if status is None or status >= 400:
            log.debug("telemetry batch of %d not taken: %s %s", len(events), status or "", answer)
            # Down or busy: the mesh events go again with the next batch, before anything newer, and so
            # does the ejection report. A batch the control plane refuses (4xx) would be refused again.
            retry = status is None or status >= 500
            kept = [r for r in events if r.startswith(MESH_EVENT)][-MAX_KEPT_EVENTS:] if retry else []
            self.queue[:0] = kept
            self._drop(len(events) - len(kept))
            if reported and retry:
                self.outliers.changed = True
            return False
        self.tapping = bool(isinstance(answer, dict) and answer.get("tap"))
        self.heard_until = time.time() + 2 * self.interval
        self.sent += len(events)
        return True
