"""The `trace` expectation of a lesson check: what one request's trace must show.

    expect:
      trace: {services: [gateway, web, catalog, pricing], calls_to: pricing, min_calls: 5, sequential: true}

The check sends its traffic with a `traceparent` it made up, so it knows the
trace id, then reads that trace from the control plane (GET /v1/traces/{id})
once every listed service has reported its span. `judge_trace` is pure.

    services    each must have at least one span in the trace
    calls_to    a service; with min_calls: at least that many calls to it (its server spans)
    sequential  true: those calls ran one after another (none overlaps the next), as a waterfall shows
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

import aiohttp

from minimesh.lesson.steps import Check, Send
from minimesh.lesson.verdict import Verdict
from minimesh.runner.control_client import tls_for


def with_trace(check: Check) -> tuple[Send, str | None]:
    """The check's Send with a fresh traceparent when it expects a trace, and that trace id."""
    if not any(kind == "trace" for kind, _ in check.expect):
        return check.send, None
    trace_id = f"{random.getrandbits(128) | 1:032x}"
    traceparent = f"00-{trace_id}-{random.getrandbits(64) | 1:016x}-01"
    return dataclasses.replace(check.send, headers=check.send.headers + (("traceparent", traceparent),)), trace_id


async def fetch_trace(control_url: str, trace_id: str, check: Check, deadline_s: float = 5.0) -> dict | None:
    """The trace once every expected service has a span in it (or what there is at the deadline)."""
    wanted = set()
    for kind, args in check.expect:
        if kind == "trace":
            wanted |= set(args.get("services") or []) | ({args["calls_to"]} if args.get("calls_to") else set())
    deadline = time.monotonic() + deadline_s
    trace = None
    tls = tls_for(control_url) or True  # the admin's certificate (MINIMESH_HOME)
    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=5)) as http:
        while True:
            async with http.get(f"{control_url}/v1/traces/{trace_id}", ssl=tls) as resp:
                trace = await resp.json() if resp.status == 200 else trace
            if trace and wanted <= {s["service"] for s in trace["spans"]}:
                await asyncio.sleep(0.3)  # one more export round, so late spans of the same services arrive
                async with http.get(f"{control_url}/v1/traces/{trace_id}", ssl=tls) as resp:
                    return await resp.json()
            if time.monotonic() > deadline:
                return trace
            await asyncio.sleep(0.1)


def judge_trace(args: dict, trace: dict | None) -> Verdict:
    spans = (trace or {}).get("spans") or []
    have = sorted({s["service"] for s in spans})
    wanted = list(args.get("services") or [])
    missing = [s for s in wanted if s not in have]
    what = f"one request's trace covers {', '.join(wanted)}" if wanted else "the request's trace"
    if missing:
        return Verdict(False, what, f"spans only from {', '.join(have) or 'nobody'}; missing {', '.join(missing)}",
                       "an app that does not forward traceparent splits the trace (see the README's break-it)")
    target = args.get("calls_to")
    if not target:
        return Verdict(True, what, f"{len(spans)} spans")
    calls = sorted((s for s in spans if s["service"] == target and s["kind"] == "server"), key=lambda s: s["start"])
    details = [f"{len(calls)} calls to {target}"]
    ok = len(calls) >= args.get("min_calls", 1)
    if "sequential" in args:
        one_by_one = all(a["start"] + a["duration_ms"] / 1000 <= b["start"] for a, b in zip(calls, calls[1:]))
        ok = ok and one_by_one == bool(args["sequential"])
        details.append("one after another" if one_by_one else "overlapping")
    what = f"{what}, with at least {args.get('min_calls', 1)} calls to {target}" + (
        " made one after another" if args.get("sequential") else "")
    return Verdict(ok, what, "measured " + ", ".join(details))
