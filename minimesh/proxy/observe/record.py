"""A request's record: one compact JSON object per request per reporter (telemetry.py says who wants it).

It is the access log's line, a span of a trace and a tap line at once:

    {"reporter":"outbound","service":"web","version":"v1","instance":"web-v1-0","namespace":"default",
     "peer":null,"method":"GET","authority":"catalog","path":"/","destination":"catalog",
     "destination_namespace":"default","route":null,"subset":null,"status":200,"flags":"-",
     "duration_ms":1.234,"start":1764770000.123456,"endpoint":"10.0.0.7:9000", ...,
     "trace_id":"4bf9...","span_id":"00f0...","parent_id":null,"sampled":true,"authz":null}

With the demo profile (access log, every trace recorded) a record is made for
every request, so it is written out field by field into one f-string rather
than handed to `json.dumps` as a dict: the keys are constants, and the
reporter's own fields are encoded once per direction. The text is exactly
what `to_json` would make of the same dict (same keys, order, separators,
escapes and float repr; tests/unit/telemetry/test_record.py checks it), half the
cost.
"""

from __future__ import annotations

from functools import lru_cache
from json.encoder import encode_basestring_ascii as _quoted

from minimesh.config.namespaces import namespace_of_key, telemetry_name
from minimesh.proxy.observe.export import to_json


def _json(value) -> str:
    """One JSON value: strings and None directly, anything else (numbers, dicts) as json.dumps would."""
    kind = type(value)
    if kind is str:
        return _quoted(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int or (kind is float and value - value == 0):  # finite: json.dumps writes NaN and Infinity
        return repr(value)
    return to_json(value)


def reporter_head(identity: dict, direction: str) -> str:
    """The record's opening, the same for every request of one reporter: up to the "peer" key."""
    return (f'{{"reporter":{_json(direction)},"service":{_json(identity["service"])},'
            f'"version":{_json(identity["version"])},"instance":{_json(identity["instance"])},'
            f'"namespace":{_json(identity.get("namespace", "default"))},"peer":')


def destination(journey, me: dict) -> tuple[str | None, str | None]:
    """Who was called, as telemetry names it ('catalog', 'catalog.foo'), and its namespace (None: external)."""
    if journey.direction == "inbound":  # this workload itself
        return me["service"], me.get("namespace", "default")
    if not journey.service:
        return None, None
    return shown(journey.service), namespace_of_key(journey.service)


@lru_cache(maxsize=1024)
def shown(key: str) -> str:
    """The destination's service key as telemetry names it: 'catalog', 'catalog.foo' (config/namespaces.py)."""
    return telemetry_name(key)


def request_record(head: str, me: dict, request, status: int, duration_ms: float, ended: float) -> str:
    """The request's record as one JSON line; `head` is `reporter_head(me, its direction)`."""
    journey = request.journey
    started = journey.started
    dst, dst_namespace = destination(journey, me)
    attempts = journey.attempts
    tries = ",".join([f"[{_json(a.endpoint)},{_json(a.status)},{_json(a.error)},"
                      f"{_json(round((a.started - started) * 1000, 3))},{_json(round(a.duration_ms, 3))}]"
                      for a in attempts])
    return (f'{head}{_json(journey.peer)},"method":{_json(request.method)},'
            f'"authority":{_json(request.authority)},"path":{_json(request.path)},'
            f'"destination":{_json(dst)},"destination_namespace":{_json(dst_namespace)},'
            f'"route":{_json(journey.route)},"subset":{_json(journey.subset)},"status":{_json(status)},'
            f'"flags":{_json(",".join(journey.flags) or "-")},"duration_ms":{_json(round(duration_ms, 3))},'
            f'"start":{_json(round(ended - duration_ms / 1000, 6))},"endpoint":{_json(journey.endpoint)},'
            f'"upstream_instance":{_json(journey.endpoint_instance)},"attempts":{len(attempts)},"tries":[{tries}],'
            f'"mtls":{_json(journey.mtls or journey.peer_identity is not None)},'
            f'"external":{_json(journey.external)},'
            f'"upstream_security":{_json(journey.upstream_security)},"identity":{_json(journey.peer_identity)},'
            f'"request_id":{_json(request.headers.get("x-request-id"))},"trace_id":{_json(journey.trace_id)},'
            f'"span_id":{_json(journey.span_id)},"parent_id":{_json(journey.parent_id)},'
            f'"sampled":{_json(journey.sampled)},"authz":{_json(journey.authz)}}}')
