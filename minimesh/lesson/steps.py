"""A lesson's steps and their checks, as written under `steps:` in lesson.yaml.

    steps:
      - name: round-robin
        title: Round robin over three catalog instances
        manifests: [catalog-round-robin.yaml]   # must be in force at this step
        faults: {catalog-v1-2: {delay_ms: 0}}   # app fault knobs (instance or service)
        look: Each catalog instance gets a third of the requests.
        checks:
          - name: the three catalog instances share the load evenly
            send: {path: /api/products, count: 300, concurrency: 1}
            expect:
              spread: {service: catalog, instances: 3, within: 0.10}
      - name: testers reach the canary
        send: {host: pricing, path: /prices?ids=p1, headers: {end-user: tester}, count: 200}
        expect:
          version_share: {service: pricing, version: v2, min: 1.0}
      - name: the shop over TLS at the gateway
        send: {scheme: https, host: shop.example.com, ca: shop-ca.crt, path: /api/products}
        expect:
          success_rate: {min: 1.0}

`send` describes traffic through the gateway (with `scheme: https`, to its
HTTPS port: the SNI and Host are `host`, the certificate verified against
the lesson's file `ca`, as `curl --cacert`); `expect` holds one or more
expectations about it (see EXPECTATIONS). `minimesh lesson step` puts a
step's manifests and faults in force; `minimesh lesson check` verifies them
and then runs the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from minimesh.errors import ConfigError

STEP_KEYS = {"name", "title", "manifests", "faults", "look", "checks"}
CHECK_KEYS = {"name", "send", "expect"}
SEND_KEYS = {"method", "path", "host", "headers", "json", "count", "concurrency", "token", "scheme", "ca"}
TOKEN_KEYS = {"host", "path"}  # send.token: where, through the gateway, to fetch a JWT to send as a Bearer
FAULT_KEYS = {"failure_rate", "delay_ms"}
# expectation -> the keys it takes
EXPECTATIONS = {
    "success_rate": {"min", "max"},
    "status": {"code", "min", "max"},  # the share of answers with this status (403: denied by a policy)
    "no_answer": {"min", "max"},  # the share refused before any HTTP answer (a failed TLS handshake)
    "spread": {"service", "instances", "within"},
    "share": {"instance", "min", "max"},
    "version_share": {"service", "version", "min", "max"},
    "latency_p95_ms": {"min", "max"},
    "latency_p80_ms": {"min", "max"},  # for a latency with two modes, the percentile clear of the second
    "attempts_per_request": {"service", "min", "max"},
    # circuit breaking and outlier detection (lesson 07), read from the sidecars and the control plane
    "overflows": {"service", "min", "max"},
    "ejected": {"instance"},
    "trace": {"services", "calls_to", "min_calls", "sequential"},  # trace_check.py
    # mTLS (security_checks.py): the wire, a rogue client, rotation, the CA's door
    "wire": {"service", "shows"},
    "rogue_client": {"service", "expect"},
    "rotation": {"min_serials", "within_s"},
    "join_token": {"service"},
    # lesson 09: the lesson, exported for Kubernetes, validates offline (export_check.py)
    "exported": {"lesson"},
}


@dataclass(frozen=True)
class Send:
    path: str = "/"
    method: str = "GET"
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    json: object = None
    count: int = 100
    concurrency: int = 1
    token: tuple[str, str] | None = None  # (host, path) answering a JWT, sent as `Authorization: Bearer`
    scheme: str = "http"  # "https": to the gateway's HTTPS port, SNI = host, verified against `ca`
    ca: Path | None = None  # the learner's CA certificate (a file of the lesson), as `curl --cacert`


@dataclass(frozen=True)
class Check:
    name: str
    send: Send
    expect: tuple[tuple[str, dict], ...]


@dataclass(frozen=True)
class Step:
    number: int  # 1-based
    name: str
    title: str
    manifests: tuple[Path, ...] = ()
    faults: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    look: str = ""
    checks: tuple[Check, ...] = field(default_factory=tuple)


def parse_steps(raw, *, lesson_dir: Path, source: str, line_of=lambda path: None) -> tuple[Step, ...]:
    """Validate the `steps:` list; errors name the file, line and field."""

    def fail(message, path):
        return ConfigError(message, source=source, line=line_of(("steps",) + path),
                           field=".".join(str(p) for p in ("steps",) + path))

    def mapping(value, path, allowed):
        if not isinstance(value, dict):
            raise fail("must be a mapping", path)
        for key in value:
            if key not in allowed:
                raise fail(f"unknown field (allowed: {', '.join(sorted(allowed))})", path + (key,))
        return value

    def number(value, path, lo=0.0, hi=None):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < lo or (hi is not None and value > hi):
            raise fail(f"must be a number from {lo:g}" + (f" to {hi:g}" if hi is not None else ""), path)
        return value

    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise fail("must be a list of steps", ())
    steps = []
    for i, body in enumerate(raw):
        at = (i,)
        mapping(body, at, STEP_KEYS)
        if not isinstance(body.get("name"), str):
            raise fail("every step needs a name", at + ("name",))
        manifests = []
        for j, name in enumerate(body.get("manifests") or []):
            path = lesson_dir / str(name)
            if not path.is_file():
                raise fail(f"file {path} does not exist", at + ("manifests", j))
            manifests.append(path)
        faults = []
        for target, knobs in (body.get("faults") or {}).items():
            mapping(knobs, at + ("faults", target), FAULT_KEYS)
            for knob, value in knobs.items():
                number(value, at + ("faults", target, knob), 0, 1 if knob == "failure_rate" else None)
            faults.append((str(target), tuple(sorted(knobs.items()))))
        checks = []
        for k, cbody in enumerate(body.get("checks") or []):
            cat = at + ("checks", k)
            mapping(cbody, cat, CHECK_KEYS)
            send = mapping(cbody.get("send", {}), cat + ("send",), SEND_KEYS)
            expect = mapping(cbody.get("expect", {}), cat + ("expect",), set(EXPECTATIONS))
            if not expect:
                raise fail(f"a check needs at least one expectation ({', '.join(EXPECTATIONS)})", cat + ("expect",))
            for kind, args in expect.items():
                mapping(args, cat + ("expect", kind), EXPECTATIONS[kind])
            scheme = str(send.get("scheme", "http"))
            if scheme not in ("http", "https"):
                raise fail("must be http or https", cat + ("send", "scheme"))
            ca = None
            if scheme == "https":
                if not send.get("host") or not send.get("ca"):
                    raise fail("an https check needs 'host' (the SNI and Host) and 'ca' (the CA file that "
                               "signed the gateway's certificate)", cat + ("send",))
                ca = lesson_dir / str(send["ca"])
                if not ca.is_file():
                    raise fail(f"file {ca} does not exist", cat + ("send", "ca"))
            token = None
            if "token" in send:
                where = mapping(send["token"], cat + ("send", "token"), TOKEN_KEYS)
                token = (str(where.get("host", "")), str(where.get("path", "/")))
            checks.append(Check(
                name=str(cbody.get("name", f"check {k + 1}")),
                send=Send(path=str(send.get("path", "/")), method=str(send.get("method", "GET")).upper(),
                          host=send.get("host"), headers=tuple((send.get("headers") or {}).items()),
                          json=send.get("json"), count=int(number(send.get("count", 100), cat + ("send", "count"), 1)),
                          concurrency=int(number(send.get("concurrency", 1), cat + ("send", "concurrency"), 1)),
                          token=token, scheme=scheme, ca=ca),
                expect=tuple(expect.items()),
            ))
        steps.append(Step(number=i + 1, name=body["name"], title=str(body.get("title", body["name"])),
                          manifests=tuple(manifests), faults=tuple(faults), look=str(body.get("look", "")),
                          checks=tuple(checks)))
    return tuple(steps)
