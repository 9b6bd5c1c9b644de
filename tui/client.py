"""The control plane as the TUI sees it: HTTP GETs in, model rows out.

Everything the TUI reads comes through here (notes/contracts.md, "Control
plane HTTP API" and "Telemetry API"); the parse_* functions are the only code
that knows the JSON shapes. The client is synchronous on purpose: it runs in
the app's worker threads, so neither the network nor JSON decoding ever
happens on the UI thread.

The transport is a seam: `HttpTransport` talks to a real control plane;
`RecordedTransport` replays answers that were recorded from one, which is how
the snapshot tests get a picture that does not move.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from minimesh.config.namespaces import workload_name
from minimesh.control.telemetry_events import describe
from minimesh.runner.control_client import opener_for
from tui.model import (Attempt, Edge, Instance, Latency, MeshStatus, Peer, Proxy, Route, Span, Stat, TapEvent,
                       Trace, Workload)

# Never through the learner's HTTP_PROXY: the control plane is local (or on the compose network).
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


UNREPORTED = "?"  # a field the tap line does not carry (older control planes)


class Unreachable(Exception):
    """The control plane did not answer (down, restarting, wrong URL)."""


class HttpTransport:
    """HTTPS with the operator's certificate from MINIMESH_HOME/credentials: the admin's,
    or where only a viewer's is kept, that one (reads work; applying a step is refused)."""

    def __init__(self, url: str, timeout: float = 5.0, home=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._opener = opener_for(self.url, home)

    def send(self, method: str, path: str, body: dict | None = None, timeout: float | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data else {})
        try:
            with self._opener.open(request, timeout=timeout or self.timeout) as resp:
                return resp.status, _json(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, _json(e.read())
        except (urllib.error.URLError, OSError) as e:
            raise Unreachable(f"control plane at {self.url}: {getattr(e, 'reason', e)}") from e


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"error": raw.decode("utf-8", "replace")[:200]}
    return value if isinstance(value, dict) else {"value": value}


class ControlClient:
    """What the TUI asks of the control plane, as model rows."""

    def __init__(self, transport):
        self.transport = transport

    @property
    def url(self) -> str:
        return getattr(self.transport, "url", "")

    def _get(self, path: str, timeout: float | None = None) -> dict:
        status, doc = self.transport.send("GET", path, None, timeout)
        if status != 200:
            raise Unreachable(doc.get("error") or f"{path}: HTTP {status}")
        return doc

    def stat(self, window_s: float) -> Stat:
        return parse_stat(self._get(f"/v1/stat?window={window_s:g}"))

    def status(self) -> MeshStatus:
        return parse_status(self._get("/v1/status"))

    def instances(self) -> tuple[Instance, ...]:
        return tuple(parse_instance(i) for i in self._get("/v1/instances").get("instances", []))

    def config(self) -> tuple[int, list[dict]]:
        doc = self._get("/v1/config")
        return int(doc.get("version") or 0), list(doc.get("resources") or [])

    def tap(self, since: int | None, timeout: float, service: str | None = None,
            status: str | None = None) -> tuple[list[TapEvent], int]:
        """New tap lines after `since` (None: from now), waiting up to `timeout` s; and the next `since`."""
        query = {"timeout": f"{timeout:g}"}
        if since is not None:
            query["since"] = str(since)
        if service:
            query["service"] = service
        if status:
            query["status"] = status
        doc = self._get("/v1/tap?" + urllib.parse.urlencode(query), timeout=timeout + 5)
        return [parse_tap(e) for e in doc.get("events", [])], int(doc.get("next") or 0)

    def trace(self, trace_id: str) -> Trace | None:
        status, doc = self.transport.send("GET", f"/v1/traces/{urllib.parse.quote(trace_id)}", None, None)
        return parse_trace(doc) if status == 200 else None

    def slowest_trace_id(self) -> str | None:
        found = self._get("/v1/traces?sort=slowest&limit=1").get("traces") or []
        return found[0]["trace_id"] if found else None

    def apply(self, manifests: list[dict], source: str) -> int:
        status, doc = self.transport.send("POST", "/v1/config", {"manifests": manifests, "source": source}, None)
        if status != 200:
            raise ValueError(doc.get("error") or f"apply: HTTP {status}")
        return int(doc["version"])


# --- the JSON shapes ---------------------------------------------------------


def _latency(doc: dict | None) -> Latency:
    doc = doc or {}
    return Latency(doc.get("p50"), doc.get("p95"), doc.get("p99"))


def parse_stat(doc: dict) -> Stat:
    workloads = tuple(Workload(
        service=str(w.get("service")), version=str(w.get("version") or "-"), meshed=int(w.get("meshed") or 0),
        requests=int(w.get("requests") or 0), rps=float(w.get("rps") or 0.0), success=w.get("success_rate"),
        latency=_latency(w.get("latency_ms")), effective=w.get("effective_success_rate"),
        actual=w.get("actual_success_rate"), retries=int(w.get("retries") or 0), mtls_share=w.get("mtls_share"),
    ) for w in doc.get("workloads", []))
    edges = tuple(Edge(
        source=str(e["source"].get("service")), source_version=str(e["source"].get("version") or "-"),
        destination=str(e["destination"].get("service")),
        destination_version=str(e["destination"].get("version") or "-"),
        requests=int(e.get("requests") or 0), rps=float(e.get("rps") or 0.0),
        success=e.get("effective_success_rate", e.get("success_rate")), actual=e.get("actual_success_rate"),
        retries=int(e.get("retries") or 0), mtls_share=e.get("mtls_share"), latency=_latency(e.get("latency_ms")),
    ) for e in doc.get("edges", []))
    routes = tuple(Route(
        service=str(r.get("service")), route=str(r.get("route") or "default"), requests=int(r.get("requests") or 0),
        rps=float(r.get("rps") or 0.0), effective=r.get("effective_success_rate", r.get("success_rate")),
        actual=r.get("actual_success_rate"), retries=int(r.get("retries") or 0),
        latency=_latency(r.get("latency_ms")),
    ) for r in doc.get("routes", []))
    return Stat(float(doc.get("window_s") or 0), workloads, edges, routes)


def parse_status(doc: dict) -> MeshStatus:
    proxies = []
    for p in doc.get("proxies", []):
        cert = p.get("certificate") or {}
        proxies.append(Proxy(
            # Named as telemetry names it ('catalog.foo' in foo), so it joins the stat's rows.
            node=p["node"], service=workload_name(p.get("service", ""), p.get("namespace"), p.get("kind", "")),
            version=p.get("version", ""), kind=p.get("kind", ""),
            acked_version=p.get("acked_version"), nacked_version=p.get("nacked_version"),
            nack_error=p.get("nack_error"), acked_config_version=p.get("acked_config_version"),
            identity=p.get("identity") or cert.get("spiffe_id"), cert_not_after=cert.get("not_after")))
    ejected = tuple((str(e.get("instance")), str(e.get("by"))) for e in doc.get("ejections") or ()
                    if isinstance(e, dict))
    return MeshStatus(int(doc.get("config_version") or 0), str(doc.get("snapshot_version") or ""), tuple(proxies),
                      ejected, lesson=doc.get("lesson") or None)


def parse_instance(doc: dict) -> Instance:
    addresses = doc.get("addresses") or {}
    return Instance(doc["service"], doc.get("version", ""), doc["instance"], doc.get("kind", "sidecar"),
                    addresses.get("app"), addresses.get("inbound"))


def _peer(doc: dict | None) -> Peer:
    doc = doc or {}
    return Peer(doc.get("service"), doc.get("version"), doc.get("instance"))


def _attempts(raw) -> tuple[Attempt, ...]:
    """Attempts, when the tap line carries them: [endpoint, status, error, offset_ms, duration_ms] or dicts."""
    if not isinstance(raw, list):
        return ()
    out = []
    for number, a in enumerate(raw, 1):
        if isinstance(a, dict):
            out.append(Attempt(number, a.get("endpoint"), a.get("instance"), a.get("status"), a.get("error"),
                               float(a.get("offset_ms") or 0), float(a.get("duration_ms") or 0)))
        elif isinstance(a, (list, tuple)) and len(a) >= 5:
            out.append(Attempt(number, a[0], None, a[1], a[2], float(a[3] or 0), float(a[4] or 0)))
    return tuple(out)


def parse_tap(e: dict) -> TapEvent:
    detail = e.get("attempts")
    return TapEvent(
        seq=int(e.get("seq") or 0), ts=float(e.get("ts") or 0), trace_id=e.get("trace_id"),
        reporter=str(e.get("reporter")), source=_peer(e.get("source")), destination=_peer(e.get("destination")),
        method=e.get("method"), authority=e.get("authority"), path=e.get("path"), route=e.get("route"),
        status=e.get("status"), flags=tuple(e.get("flags") or ()), duration_ms=float(e.get("duration_ms") or 0),
        attempts=len(detail) if isinstance(detail, list) else int(detail or 0), retries=int(e.get("retries") or 0),
        mtls=bool(e.get("mtls")), external=bool(e.get("external")),
        subset=e.get("subset", UNREPORTED),
        endpoint=e.get("endpoint"), attempt_list=_attempts(e.get("attempt_detail", detail)),
        authz=_authz(e.get("authz")), identity=e.get("identity"),
        kind=str(e.get("kind") or "request"), event=e.get("event"),
        note=describe(e) if e.get("kind") == "outlier" else None, reason=e.get("reason"))


def _authz(record) -> str | None:
    """The tap's authz record as one line: the decision and why, plus what dry-run or AUDIT policies said."""
    if not isinstance(record, dict) or not record.get("reason"):
        return None
    extra = [f"{k.replace('_', '-')}: {record[k]}" for k in ("dry_run", "audit") if record.get(k)]
    return "; ".join([str(record["reason"]), *map(str, extra)])


def parse_trace(doc: dict) -> Trace:
    spans = tuple(Span(
        span_id=s["span_id"], parent_id=s.get("parent_id"), kind=s.get("kind", ""), service=s.get("service", ""),
        instance=s.get("instance"), peer=_peer(s.get("peer")), name=s.get("name", ""), route=s.get("route"),
        status=s.get("status"), flags=tuple(s.get("flags") or ()), start=float(s.get("start") or 0),
        duration_ms=float(s.get("duration_ms") or 0), mtls=bool(s.get("mtls")), error=s.get("error"),
    ) for s in doc.get("spans", []))
    return Trace(doc.get("trace_id", ""), float(doc.get("start") or 0), float(doc.get("duration_ms") or 0), spans)


class RecordedTransport:
    """Answers recorded from a real control plane, replayed: {path: [answer, answer, ...]}.

    Each GET of a path takes its next recorded answer; when a path's answers
    run out it raises `Exhausted`, so the worker polling it stops and the
    picture holds still. Writes (POST) are recorded in `sent`.
    """

    class Exhausted(Exception):
        pass

    def __init__(self, answers: dict[str, list[dict]], url: str = "http://recorded"):
        self.answers = answers
        self.url = url
        self.taken: dict[str, int] = {}
        self.sent: list[tuple[str, str, dict | None]] = []

    def send(self, method: str, path: str, body: dict | None = None, timeout: float | None = None):
        if method != "GET":
            self.sent.append((method, path, body))
            return 200, {"version": 0}
        # Rollups are recorded per window; everything else per path.
        key = path if path.startswith("/v1/stat") else path.split("?", 1)[0]
        frames = self.answers.get(key)
        if frames is None:
            return 404, {"error": f"nothing recorded for {key}"}
        n = self.taken.get(key, 0)
        if n >= len(frames):
            raise RecordedTransport.Exhausted(key)
        self.taken[key] = n + 1
        return 200, frames[n]
