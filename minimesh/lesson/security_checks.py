"""Checks for lesson 04 (mTLS): what the wire shows, who gets in, rotation, the CA's door.

Unlike the traffic checks, these look at the mesh from places a learner can
stand: in the middle of a connection (`minimesh sniff`), on the network as an
unmeshed client, at the control plane's status, at the CA's signing API.
Each is observed around a check's traffic (`observing`), and then judged by
a pure function (`judge_security`), so the verdicts are tested without a stack.

    wire:          {service: catalog, shows: plaintext | tls}
    rogue_client:  {service: catalog, expect: served | refused}   plaintext HTTP straight at its inbound
    rotation:      {min_serials: 2, within_s: 40}                 every proxy shows a new certificate
    join_token:    {service: web}                                 no token / a forged one: 403, nothing signed
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import urllib.request

from minimesh.lesson.verdict import Verdict
from minimesh.pki.operator import ca_bundle, client_context
from minimesh.pki.spiffe import spiffe_id
from minimesh.pki.workload import build_csr, new_key
from minimesh.runner.control_client import opener_for
from minimesh.runner.state import resolve_home

SECURITY_EXPECTATIONS = {
    "wire": {"service", "shows"},
    "rogue_client": {"service", "expect"},
    "rotation": {"min_serials", "within_s"},
    "join_token": {"service"},
}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ROGUE_REQUEST = b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"


def _cp(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None,
        as_admin: bool = True) -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json", **(headers or {})})
    opener = opener_for(url) if as_admin else _anonymous(url)
    try:
        with opener.open(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _serials(control_url: str) -> dict[str, str]:
    _, status = _cp(control_url + "/v1/status")
    return {p["node"]: p["certificate"]["serial"] for p in status.get("proxies", []) if p.get("certificate")}


async def _converged(control_url: str, deadline_s: float = 10.0) -> None:
    """Wait until every proxy ACKed the newest snapshot (e.g. one that lists the sniffer)."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        _, status = await asyncio.to_thread(_cp, control_url + "/v1/status")
        if all(p.get("acked_version") == status["snapshot_version"] for p in status["proxies"]):
            return
        await asyncio.sleep(0.1)


async def _rogue(address: str, service: str) -> bool:
    """A plaintext request from outside the mesh; True when any HTTP answer came back."""
    host, port = address.rsplit(":", 1)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
        writer.write(ROGUE_REQUEST % service.encode())
        answer = await asyncio.wait_for(reader.read(64), 5)
        writer.close()
    except (OSError, TimeoutError):
        return False
    return answer.startswith(b"HTTP/1.1")


def _try_sign(control_url: str, service: str) -> list[int]:
    """Ask the CA for `service`'s certificate with no token and with a forged one."""
    body = {"service": service, "instance": f"{service}-rogue", "csr": build_csr(new_key(), spiffe_id(service))}
    return [_cp(control_url + "/v1/sign", "POST", body, headers, as_admin=False)[0]
            for headers in ({}, {"Authorization": "Bearer mmjt." + "0" * 40})]


def _anonymous(url: str) -> urllib.request.OpenerDirector:
    """A client with no certificate (a rogue), which still verifies it talks to the mesh's control plane."""
    if not url.startswith("https://"):
        return _NO_PROXY
    ctx = client_context(ca_bundle(resolve_home()), None)
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))


@contextlib.asynccontextmanager
async def observing(expect: tuple, stack):
    """Run the observers this check's expectations need around the block; yields kind -> observation."""
    from minimesh.runner.sniff import Sniffer  # the same relay `minimesh sniff` runs

    observed: dict[str, dict] = {}
    kinds = dict((k, a) for k, a in expect if k in SECURITY_EXPECTATIONS)
    async with contextlib.AsyncExitStack() as stack_ctx:
        if "wire" in kinds:
            sniffer = Sniffer(stack.control_url, kinds["wire"]["service"], out=io.StringIO())
            await stack_ctx.enter_async_context(sniffer.running())
            await _converged(stack.control_url)
        before = await asyncio.to_thread(_serials, stack.control_url) if "rotation" in kinds else {}
        yield observed
        if "wire" in kinds:
            observed["wire"] = {"tls": sum(1 for _, _, k in sniffer.seen if k == "tls"),
                                "plaintext": sum(1 for _, _, k in sniffer.seen if k == "plaintext")}
    if "rogue_client" in kinds:
        service = kinds["rogue_client"]["service"]
        answers = [await _rogue(i["addresses"]["inbound"], service) for i in stack.targets(service)]
        observed["rogue_client"] = {"served": answers.count(True), "refused": answers.count(False)}
    if "rotation" in kinds:
        args = kinds["rotation"]
        seen = {node: {serial} for node, serial in before.items()}
        until = time.monotonic() + args.get("within_s", 40)
        while time.monotonic() < until:
            for node, serial in (await asyncio.to_thread(_serials, stack.control_url)).items():
                seen.setdefault(node, set()).add(serial)
            if seen and all(len(s) >= args["min_serials"] for s in seen.values()):
                break
            await asyncio.sleep(1.0)
        observed["rotation"] = {node: len(s) for node, s in seen.items()}
    if "join_token" in kinds:
        observed["join_token"] = {"statuses": await asyncio.to_thread(
            _try_sign, stack.control_url, kinds["join_token"]["service"])}


def judge_security(kind: str, args: dict, seen: dict) -> Verdict:
    """One security expectation against what was observed: pure."""
    if kind == "wire":
        want, other = args["shows"], "plaintext" if args["shows"] == "tls" else "tls"
        ok = seen.get(want, 0) > 0 and seen.get(other, 0) == 0
        return Verdict(ok, f"the wire to {args['service']} shows {want} only",
                       f"sniffed {seen.get('tls', 0)} TLS and {seen.get('plaintext', 0)} plaintext chunks")
    if kind == "rogue_client":
        want = args["expect"]
        n = seen["served"] + seen["refused"]
        ok = n > 0 and seen[want] == n
        return Verdict(ok, f"a plaintext client outside the mesh is {want} by {args['service']}",
                       f"{seen['served']} of {n} instances answered it")
    if kind == "rotation":
        short = {node: n for node, n in seen.items() if n < args["min_serials"]}
        return Verdict(bool(seen) and not short,
                       f"every proxy shows at least {args['min_serials']} certificate serials",
                       f"serials seen: {', '.join(f'{k}={v}' for k, v in sorted(seen.items()))}",
                       "" if not short else "start the stack with a short lifetime: MINIMESH_CERT_TTL=20s")
    if kind == "join_token":
        statuses = seen["statuses"]
        return Verdict(statuses == [403, 403], f"the CA refuses {args['service']}'s certificate without its token",
                       f"no token → {statuses[0]}, forged token → {statuses[1]}")
    raise ValueError(f"unknown expectation {kind}")
