"""A request's record (proxy/observe/record.py) is written field by field: it must be exactly what
`to_json` makes of the same object — keys, order, separators, escapes, numbers."""

import json
import math
import random

from multidict import CIMultiDict

from minimesh.proxy.message import Attempt, Journey, Request
from minimesh.proxy.observe.export import to_json
from minimesh.proxy.observe.metrics import MeshMetrics
from minimesh.proxy.observe.record import _json
from minimesh.proxy.observe.telemetry import RequestTelemetry

ME = {"service": "web", "version": "v1", "instance": "web-v1-0", "namespace": "shop"}
KEYS = ["reporter", "service", "version", "instance", "namespace", "peer", "method", "authority", "path",
        "destination", "destination_namespace", "route", "subset", "status", "flags", "duration_ms", "start",
        "endpoint", "upstream_instance", "attempts", "tries", "mtls", "external", "upstream_security", "identity",
        "request_id", "trace_id", "span_id", "parent_id", "sampled", "authz"]


def a_request(rng: random.Random, direction: str) -> Request:
    odd = rng.choice(["plain", 'quote " and \\ backslash', "ünïcödé ☃", "tab\tnewline\n", "\x00\x1f"])
    journey = Journey(direction, service=rng.choice(["shop/catalog", "default/payments", None]),
                      route=rng.choice([None, "canary", odd]), subset=rng.choice([None, "v2"]),
                      mtls=rng.random() < 0.5, external=rng.random() < 0.2)
    for _ in range(rng.choice([0, 1, 1, 3])):
        journey.attempts.append(Attempt(rng.choice(["10.0.0.7:9000", "10.0.0.8:9000"]),
                                        rng.choice([200, 503, None]), rng.choice([None, "UF: refused " + odd]),
                                        rng.uniform(0, 50), journey.started + rng.uniform(0, 0.01)))
        journey.endpoint = journey.attempts[-1].endpoint
    journey.endpoint_instance = rng.choice([None, "catalog-v1-0"])
    journey.peer = rng.choice([None, "web;v1;web-v1-0"])
    journey.peer_identity = rng.choice([None, "spiffe://cluster.local/ns/shop/sa/web"])
    journey.upstream_security = rng.choice([None, "plaintext", "mutual_tls spiffe://x"])
    journey.flags = rng.choice([[], ["UF"], ["UF", "URX"]])
    journey.authz = rng.choice([None, {"decision": "ALLOW", "policy": odd, "rules": [1, 2.5, None, True]}])
    journey.trace_id, journey.span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    journey.parent_id = rng.choice([None, "00f067aa0ba902b8"])
    journey.sampled = rng.random() < 0.5
    headers = CIMultiDict({"x-request-id": "r-" + odd} if rng.random() < 0.8 else {})
    return Request(rng.choice(["GET", "POST"]), "/p?q=" + odd, "catalog:9000", headers, journey=journey)


def test_every_record_is_exactly_what_to_json_makes_of_it():
    rng = random.Random(20261203)
    telemetry = RequestTelemetry(ME, MeshMetrics(), None)
    for i in range(500):
        request = a_request(rng, rng.choice(["outbound", "inbound", "gateway"]))
        line = telemetry.record(request, rng.choice([200, 403, 503]), rng.uniform(0, 900), 1764770000 + i / 7)
        parsed = json.loads(line)
        assert list(parsed) == KEYS
        assert to_json(parsed) == line  # json.dumps would have written the same text
        assert parsed["request_id"] == request.headers.get("x-request-id")
        assert parsed["path"] == request.path and parsed["attempts"] == len(request.journey.attempts)


def test_a_value_json_writes_specially_is_written_as_json_writes_it():
    for value in [0, -3, 10**20, 0.1, 1e-7, 1e22, -0.0, math.nan, math.inf, -math.inf, True, False, None,
                  "", "é", [1, "x"], {"k": None}]:
        assert _json(value) == to_json(value)
