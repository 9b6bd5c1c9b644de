"""Readiness: wait, concurrently, until every process answers its probe.

All probes run at once (one small task each, polling every 100 ms), so start-up
takes as long as the slowest process rather than the sum of them all. A probe is
either an HTTP GET that must answer 200 — the control plane's `/healthz`, a
proxy's `/ready` — or, for an app (any program at all), a TCP connect to its
port. The wait gives up at a deadline, naming everything that is not ready and
the last thing each probe saw, or as soon as a process exits during start-up.
"""

import asyncio
import json
import ssl
import time

from minimesh.errors import UserError
from minimesh.runner.plan import HOST, Probe
from minimesh.runner.process import Child, describe_exit

POLL = 0.1


def _liveness_tls() -> ssl.SSLContext:
    """For /healthz only: is the control plane up? Says nothing secret, so the server is not verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def check(probe: Probe, timeout: float = 1.0) -> tuple[bool, str]:
    """Probe once; return (ready, what we saw)."""
    try:
        tls = _liveness_tls() if probe.tls else None
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, probe.port, ssl=tls), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return False, f"{probe.describe()}: {getattr(e, 'strerror', None) or 'connection failed'}"
    try:
        if probe.path is None:
            return True, "listening"
        writer.write(f"GET {probe.path} HTTP/1.1\r\nHost: {HOST}:{probe.port}\r\n"
                     "Connection: close\r\n\r\n".encode())
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.decode("latin-1").split()
        status = parts[1] if len(parts) > 1 else "no answer"
        return status == "200", f"{probe.describe()} → {status}"
    except (OSError, asyncio.TimeoutError) as e:
        return False, f"{probe.describe()}: {e.__class__.__name__}"
    finally:
        writer.close()


async def wait_ready(children: list[Child], deadline: float, clock=time.monotonic) -> None:
    """Return once every child's probe passes; raise UserError at `deadline` or if one exits."""
    last_seen: dict[str, str] = {}

    async def one(child: Child) -> None:
        while True:
            if child.proc is not None and child.proc.returncode is not None:
                line = child.last_log_line()
                raise UserError(f"{child.spec.name} exited during start-up "
                                f"({describe_exit(child.proc.returncode)})"
                                + (f": {line}" if line else "") + f"; see {child.log_path}")
            ok, seen = await check(child.spec.probe)
            last_seen[child.spec.name] = seen
            if ok:
                return
            await asyncio.sleep(POLL)

    tasks = [asyncio.ensure_future(one(c)) for c in children]
    try:
        remaining = max(0.0, deadline - clock())
        done, pending = await asyncio.wait(tasks, timeout=remaining, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception():
                raise t.exception()
        if pending:
            waiting = [c for c, t in zip(children, tasks) if not t.done()]
            names = "; ".join(f"{c.spec.name} ({last_seen.get(c.spec.name, 'not probed')})" for c in waiting)
            raise UserError(f"not ready in time: {names}; logs are in {waiting[0].log_path.parent}")
    finally:
        for t in tasks:
            t.cancel()


async def get_json(port: int, path: str, timeout: float = 2.0, tls: ssl.SSLContext | None = None) -> dict | None:
    """GET http(s)://127.0.0.1:port/path and parse the JSON body; None on any failure."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port, ssl=tls), timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), timeout)
        head, _, body = raw.partition(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
            return None
        if b"transfer-encoding: chunked" in head.lower():
            body = _dechunk(body)
        return json.loads(body)
    except (OSError, asyncio.TimeoutError, ValueError):
        return None
    finally:
        writer.close()


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2:]
    return out


def unsynced(status: dict, nodes: set[str]) -> list[str]:
    """The proxies that have not yet acked the control plane's current snapshot."""
    current = status.get("snapshot_version")
    acked = {p.get("node") for p in status.get("proxies", []) if p.get("acked_version") == current}
    return sorted(nodes - acked)


async def wait_converged(control_port: int, nodes: set[str], deadline: float, clock=time.monotonic,
                         tls: ssl.SSLContext | None = None) -> None:
    """Wait until every proxy in `nodes` has ACKed the same snapshot the control plane holds.

    A proxy's /ready only says it holds *a* snapshot; one taken before the last
    instance registered lacks that endpoint. Once all ACK the current version,
    every proxy knows every endpoint, and the first request through the gateway works.
    """
    waiting = sorted(nodes)
    while clock() < deadline:
        status = await get_json(control_port, "/v1/status", tls=tls)
        waiting = unsynced(status, nodes) if status else ["control plane"]
        if not waiting:
            return
        await asyncio.sleep(POLL)
    raise UserError(f"not in sync with the control plane in time: {', '.join(waiting)}")
