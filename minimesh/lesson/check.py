"""`minimesh lesson check`: is the live stack where this step of the lesson says?

A step is checked in three stages, and each failure says how to fix it:

1. its manifests are in force (the control plane holds the same spec);
2. its fault knobs are set on the apps;
3. its checks: traffic through the gateway, measured against expectations.

The first two catch "forgot to apply"; the third shows the mesh doing what
the lesson teaches — the numbers a learner would see in the TUI.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from minimesh.config import load_file
from minimesh.lesson.export_check import judge_export
from minimesh.lesson.steps import Step
from minimesh.lesson.security_checks import SECURITY_EXPECTATIONS, judge_security, observing
from minimesh.lesson.trace_check import fetch_trace, judge_trace, with_trace
from minimesh.lesson.traffic import Traffic, send_traffic
from minimesh.lesson.verdict import Verdict
from minimesh.runner.control_client import tls_for


@dataclass
class Stack:
    """Where a running lesson is: the control plane, the gateway, each instance's addresses."""

    control_url: str
    gateway_url: str
    instances: list[dict]  # from the control plane's /v1/instances
    gateway_https_url: str | None = None  # the gateway's HTTPS port (Gateway servers on 443)

    def targets(self, name: str) -> list[dict]:
        """Instances named `name`, or every instance of service `name`."""
        return [i for i in self.instances if i.get("kind") == "sidecar"
                and name in (i["instance"], i["service"])]


async def load_stack(control_url: str, gateway_url: str) -> Stack:
    async with aiohttp.ClientSession(trust_env=False) as http:
        async with http.get(f"{control_url}/v1/instances", ssl=tls_for(control_url) or True) as resp:
            instances = (await resp.json())["instances"]
    return Stack(control_url, gateway_url, instances)


def manifests_in_force(step: Step, stored: list[dict], lesson_ref: str) -> list[Verdict]:
    by_key = {(m["kind"], m["metadata"]["name"]): m for m in stored}
    verdicts = []
    for file in step.manifests:
        for resource in load_file(file):
            name = f"{resource.kind.lower()}/{resource.name}"
            have = by_key.get((resource.kind, resource.name))
            ok = have is not None and have.get("spec") == resource.manifest.get("spec")
            verdicts.append(Verdict(
                ok, f"{name} from {file.name} is in force",
                "" if ok else ("it is not applied" if have is None else "a different version of it is applied"),
                "" if ok else f"run: minimesh apply {file}   (or: minimesh lesson step {lesson_ref} {step.number})"))
    return verdicts


async def faults_in_force(step: Step, stack: Stack, lesson_ref: str) -> list[Verdict]:
    verdicts = []
    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=5)) as http:
        for target, knobs in step.faults:
            for inst in stack.targets(target):
                try:
                    async with http.get(f"http://{inst['addresses']['app']}/_fault") as resp:
                        have = await resp.json()
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                    verdicts.append(Verdict(False, f"{inst['instance']} answers its fault knobs", str(e)))
                    continue
                wrong = {k: have.get(k) for k, v in knobs if abs(float(have.get(k, -1)) - v) > 1e-9}
                want = " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in knobs)
                verdicts.append(Verdict(
                    not wrong, f"{inst['instance']} has {', '.join(f'{k}={v:g}' for k, v in knobs)}",
                    f"it has {wrong}" if wrong else "",
                    "" if not wrong else f"run: minimesh fault {inst['instance']} {want}   (or: minimesh lesson step {lesson_ref} {step.number})"))
    return verdicts


async def _outbound_counts(stack: Stack, service: str) -> tuple[int, int]:
    """(requests, attempts) all sidecars have sent to `service` so far."""
    requests = attempts = 0
    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=5)) as http:
        for inst in stack.instances:
            async with http.get(f"http://{inst['addresses']['admin']}/stats") as resp:
                stats = await resp.json()
            requests += sum(r["count"] for r in stats["requests"]
                            if r["direction"] in ("outbound", "gateway") and r["service"] == service)
            attempts += sum(a["count"] for a in stats["attempts"]
                            if a["direction"] in ("outbound", "gateway") and a["service"] == service)
    return requests, attempts


def judge(kind: str, args: dict, traffic: Traffic, counts: tuple[int, int] | None,
          trace: dict | None = None) -> Verdict:
    """One expectation against measured traffic: pure, so it is tested without a stack."""
    if kind == "trace":
        return judge_trace(args, trace)  # trace_check.py
    n = len(traffic.answers)
    if kind == "success_rate":
        rate = traffic.success_rate
        ok = args.get("min", 0) <= rate <= args.get("max", 1)
        return Verdict(ok, f"success rate {_range(args)}", f"measured {rate:.1%} of {n}")
    if kind == "no_answer":  # the connection or the TLS handshake was refused: no HTTP status at all
        share = sum(1 for a in traffic.answers if a.status == 0) / max(1, n)
        why = next((a.error for a in traffic.answers if a.error), "")
        ok = args.get("min", 0) <= share <= args.get("max", 1)
        return Verdict(ok, f"no HTTP answer (refused before any request) {_range(args)}",
                       f"measured {share:.1%} of {n}" + (f" ({why[:120]})" if why else ""))
    if kind == "status":
        code = int(args["code"])
        share = sum(1 for a in traffic.answers if a.status == code) / max(1, n)
        seen = _tally([str(a.status) for a in traffic.answers])
        ok = args.get("min", 0) <= share <= args.get("max", 1)
        return Verdict(ok, f"{code} answers {_range(args)}", f"measured {share:.1%} of {n} ({seen})")
    if kind in ("latency_p95_ms", "latency_p80_ms"):
        name = kind.split("_")[1]  # "p95"
        value = traffic.percentile_ms(int(name[1:]) / 100)
        lo, hi = args.get("min", 0), args.get("max", float("inf"))
        what = (f"{name} latency between {lo} and {hi} ms" if "min" in args and "max" in args
                else f"{name} latency over {lo} ms" if "min" in args else f"{name} latency under {hi} ms")
        return Verdict(lo <= value <= hi, what, f"measured {value:.0f} ms")
    if kind == "overflows":
        # counts: (circuit-breaker overflows before, after) summed over every sidecar, for the service
        n = counts[1] - counts[0]
        ok = args.get("min", 0) <= n <= args.get("max", float("inf"))
        return Verdict(ok, f"requests or retries to {args['service']} refused by a circuit breaker (UO) "
                           f"{_range(args, pct=False)}", f"measured {n}")
    if kind == "ejected":
        # counts: the callers that have ejected the instance now (control plane's /v1/status)
        by = counts or []
        return Verdict(bool(by), f"{args['instance']} is ejected by outlier detection",
                       f"ejected by {', '.join(by)}" if by else "no caller has ejected it")
    if kind == "spread":
        served = [a.served_by(args["service"]) for a in traffic.answers if a.served_by(args["service"])]
        counts_by = {i: served.count(i) for i in set(served)}
        even = len(served) / args["instances"] if served else 0
        within = args.get("within", 0.1)
        ok = len(counts_by) == args["instances"] and all(abs(c - even) <= within * even for c in counts_by.values())
        shown = ", ".join(f"{i}: {c}" for i, c in sorted(counts_by.items()))
        return Verdict(ok, f"{args['service']} load spread over {args['instances']} instances within ±{within:.0%} of even",
                       f"measured {shown}")
    if kind == "share":
        instance = args["instance"]
        service = instance.rsplit("-", 2)[0]
        served = [a.served_by(service) for a in traffic.answers if a.served_by(service)]
        share = served.count(instance) / max(1, len(served))
        ok = args.get("min", 0) <= share <= args.get("max", 1)
        return Verdict(ok, f"{instance} serves {_range(args)} of {service}'s requests",
                       f"measured {share:.1%} of {len(served)}")
    if kind == "version_share":
        # Which version of a service answered: the observed split of a canary,
        # or (with a header in `send`) where a header route sends its traffic.
        service, version = args["service"], args["version"]
        versions = [a.version_of(service) for a in traffic.answers if a.version_of(service)]
        share = versions.count(version) / max(1, len(versions))
        ok = bool(versions) and args.get("min", 0) <= share <= args.get("max", 1)
        return Verdict(ok, f"{service} {version} serves {_range(args)} of {service}'s answers",
                       f"measured {share:.1%} of {len(versions)}"
                       + (f" ({_tally(versions)})" if versions else "; no answer named a version of " + service))
    if kind == "attempts_per_request":
        requests, attempts = counts
        ratio = attempts / requests if requests else 0.0
        ok = args.get("min", 0) <= ratio <= args.get("max", float("inf"))
        return Verdict(ok, f"attempts per request to {args['service']} {_range(args, pct=False)}",
                       f"measured {ratio:.2f} ({attempts} attempts for {requests} requests)")
    raise ValueError(f"unknown expectation {kind}")


async def _overflows(stack: Stack, service: str) -> int:
    """Requests and retries to `service` that the sidecars' circuit breakers refused so far."""
    total = 0
    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=5)) as http:
        for inst in stack.instances:
            async with http.get(f"http://{inst['addresses']['admin']}/stats") as resp:
                stats = await resp.json()
            total += sum(o["count"] for o in (stats.get("breakers") or {}).get("overflows", [])
                         if o["service"] == service)
    return total


async def _ejected_by(stack: Stack, instance: str) -> list[str]:
    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.get(stack.control_url.rstrip("/") + "/v1/status", ssl=tls_for(stack.control_url) or True) as resp:
            status = await resp.json()
    return sorted({e["by"] for e in status.get("ejections", []) if e.get("instance") == instance})


async def _ejected_by_soon(stack: Stack, instance: str, deadline_s: float = 3.0) -> list[str]:
    """The sidecars report ejections with their next telemetry batch (a fraction of a second): wait for it."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        by = await _ejected_by(stack, instance)
        if by or loop.time() >= end:
            return by
        await asyncio.sleep(0.2)


async def run_checks(step: Step, stack: Stack) -> list[Verdict]:
    verdicts = []
    for check in step.checks:
        services = [args["service"] for kind, args in check.expect if kind == "attempts_per_request"]
        before = {s: await _outbound_counts(stack, s) for s in services}
        overflowing = [args["service"] for kind, args in check.expect if kind == "overflows"]
        overflows_before = {s: await _overflows(stack, s) for s in overflowing}
        send, trace_id = with_trace(check)  # a traceparent of our own when a trace is expected
        async with observing(check.expect, stack) as observed:  # mTLS checks watch around the traffic
            traffic = await send_traffic(stack.gateway_url, send, stack.gateway_https_url)
        trace = await fetch_trace(stack.control_url, trace_id, check) if trace_id else None
        after = {s: await _outbound_counts(stack, s) for s in services}
        for kind, args in check.expect:
            counts = None
            if kind == "attempts_per_request":
                s = args["service"]
                counts = (after[s][0] - before[s][0], after[s][1] - before[s][1])
            elif kind == "overflows":
                counts = (overflows_before[args["service"]], await _overflows(stack, args["service"]))
            elif kind == "ejected":
                counts = await _ejected_by_soon(stack, args["instance"])
            v = (judge_security(kind, args, observed[kind]) if kind in SECURITY_EXPECTATIONS
                 else judge_export(args["lesson"]) if kind == "exported"
                 else judge(kind, args, traffic, counts, trace))
            verdicts.append(Verdict(v.ok, f"{check.name}: {v.what}", v.detail))
    return verdicts


async def check_step(step: Step, stack: Stack, stored: list[dict], lesson_ref: str) -> list[Verdict]:
    verdicts = manifests_in_force(step, stored, lesson_ref)
    verdicts += await faults_in_force(step, stack, lesson_ref)
    if all(v.ok for v in verdicts):
        verdicts += await run_checks(step, stack)
    return verdicts


def _tally(values: list[str]) -> str:
    return ", ".join(f"{v}: {values.count(v)}" for v in sorted(set(values)))


def _range(args: dict, pct: bool = True) -> str:
    fmt = (lambda x: f"{x:.1%}") if pct else (lambda x: f"{x:g}")
    if "min" in args and "max" in args:
        return f"between {fmt(args['min'])} and {fmt(args['max'])}"
    if "min" in args:
        return f"at least {fmt(args['min'])}"
    return f"at most {fmt(args['max'])}"


def run(coro):
    return asyncio.run(coro)
