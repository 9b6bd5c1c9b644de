"""Closed-loop throughput with wrk, when it is installed (Debian: `apt-get install wrk`).

Why wrk and not the Python client: on this kind of machine one wrk thread
drives ~100k requests/s at a bare upstream where the Python closed loop tops
out near 60k, so wrk stays out of the way even for the direct and HAProxy
runs. Its summary is parsed from the text it prints:

    334645 requests in 3.10s, 40.21MB read
    Socket errors: connect 0, read 2, write 0, timeout 0
    Non-2xx or 3xx responses: 17
    Requests/sec: 107934.92
"""

from __future__ import annotations

import re
import shutil
import subprocess

REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(m?s)")
SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def available() -> bool:
    return shutil.which("wrk") is not None


def parse(output: str) -> dict:
    done = REQUESTS.search(output)
    if done is None:
        raise ValueError(f"wrk printed no summary:\n{output}")
    requests, elapsed = int(done.group(1)), float(done.group(2))
    if done.group(3) == "ms":
        elapsed /= 1000
    errors = {}
    if m := SOCKET_ERRORS.search(output):
        errors.update({k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups()) if int(v)})
    if m := NON_2XX.search(output):
        errors["non-2xx"] = int(m.group(1))
    return {"requests": requests, "duration_s": elapsed, "rps": round(requests / elapsed, 1), "errors": errors}


def run(port: int, host_header: str, connections: int, duration: float, threads: int, preexec_fn) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
           "-H", f"Host: {host_header}", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, preexec_fn=preexec_fn)
    return {"mode": "closed", "tool": "wrk", "connections": connections, **parse(out.stdout)}
