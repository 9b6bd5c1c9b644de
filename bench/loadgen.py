"""The load generator: fixed-rate open loop for latency, a closed loop when wrk is missing.

Open loop, and why it is measured from the intended send time
--------------------------------------------------------------
A closed-loop client (N connections, each sending its next request when the
last answer arrives) slows down when the server does, so a stall of 50 ms
delays the requests that *would* have been sent during it, and they are never
measured: "coordinated omission". Here the schedule is fixed in advance —
request i is due at start + i/rate — and each request's latency runs from
the moment it was *due*, not the moment it finally left. A request held up
by a busy proxy, or by this client itself, is charged for the wait, as a
real user arriving at that moment would be. Requests go out on a pool of
keep-alive connections; when every connection is busy a new one is opened
(counted in `connections`), so the rate never bends to the server.

`late_sends_ms_p99` says how late the client itself got requests out; when
it is large the client, not the server, was the bottleneck, and the run
says so instead of quietly reporting the client's lag as the proxy's.

Closed loop
-----------
wrk (C, epoll) is the throughput tool when installed: one thread of it
drives ~10x more requests per core than this Python client. The closed loop
here is the fallback, so the bench still runs where wrk does not; its
figures are marked with the tool that produced them.

    python -m bench.loadgen open   --port P [--host-header bench] --rate 200 --duration 15
    python -m bench.loadgen closed --port P [--host-header bench] --connections 32 --duration 10

Both print one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a fixed GET and reads the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        """Send `request`, read the whole answer, return its status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = STATUS.match(head)
        length = CONTENT_LENGTH.search(head)
        if status is None or length is None:
            raise ValueError(f"unexpected answer head: {head[:80]!r}")
        await self.reader.readexactly(int(length.group(1)))
        return int(status.group(1))

    def close(self) -> None:
        self.writer.close()


def request_bytes(host_header: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: minimesh-bench\r\n\r\n".encode()


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def open_loop(port: int, host_header: str, rate: float, duration: float, raw: bool = False) -> dict:
    # uvloop's loop.time() ticks in whole milliseconds: too coarse for latencies
    # under a millisecond, so every timestamp here comes from perf_counter.
    loop = asyncio.get_running_loop()
    now = time.perf_counter
    request = request_bytes(host_header)
    idle: list[Connection] = []
    opened = 0
    latencies: list[float] = []
    lateness: list[float] = []
    errors: dict[str, int] = {}
    tasks: set[asyncio.Task] = set()

    async def one(due: float) -> None:
        nonlocal opened
        lateness.append(now() - due)
        try:
            if idle:
                conn = idle.pop()
            else:
                opened += 1
                conn = await Connection.open(port)
            status = await conn.exchange(request)
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            return
        latencies.append(now() - due)  # from when it was due: no coordinated omission
        idle.append(conn)
        if status >= 500:
            errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1

    def fire(due: float) -> None:
        task = loop.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    count = int(rate * duration)
    start = now() + 0.1
    for i in range(count):
        due = start + i / rate
        loop.call_later(due - now(), fire, due)
    await asyncio.sleep(start + duration - now())
    deadline = now() + 10
    while tasks and now() < deadline:
        await asyncio.sleep(0.01)
    for conn in idle:
        conn.close()
    latencies.sort()
    lateness.sort()
    ms = lambda v: None if v is None else round(v * 1000, 3)  # noqa: E731
    extra = {"latencies_ms": [ms(v) for v in latencies]} if raw else {}
    return {**extra,
        "mode": "open", "tool": "bench.loadgen (python)", "rate": rate, "duration_s": duration,
        "sent": count, "completed": len(latencies), "errors": errors, "unfinished": len(tasks),
        "connections": opened,
        "p50_ms": ms(percentile(latencies, 50)), "p90_ms": ms(percentile(latencies, 90)),
        "p99_ms": ms(percentile(latencies, 99)), "max_ms": ms(latencies[-1] if latencies else None),
        "late_sends_ms_p99": ms(percentile(lateness, 99)),
    }


async def closed_loop(port: int, host_header: str, connections: int, duration: float) -> dict:
    loop = asyncio.get_running_loop()
    request = request_bytes(host_header)
    done = 0
    errors: dict[str, int] = {}
    stop_at = loop.time() + duration

    async def worker() -> None:
        nonlocal done
        conn = None
        while loop.time() < stop_at:
            try:
                conn = conn or await Connection.open(port)
                status = await conn.exchange(request)
            except (OSError, ValueError, asyncio.IncompleteReadError) as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                conn = None
                continue
            done += 1
            if status >= 500:
                errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
        if conn:
            conn.close()

    started = loop.time()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = loop.time() - started
    return {"mode": "closed", "tool": "bench.loadgen (python)", "connections": connections,
            "duration_s": round(elapsed, 3), "requests": done, "errors": errors,
            "rps": round(done / elapsed, 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="minimesh bench load generator")
    parser.add_argument("mode", choices=["open", "closed"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-header", default="bench")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--raw", action="store_true", help="open loop: also print every latency")
    args = parser.parse_args(argv)
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        if args.mode == "open":
            result = runner.run(open_loop(args.port, args.host_header, args.rate, args.duration, args.raw))
        else:
            result = runner.run(closed_loop(args.port, args.host_header, args.connections, args.duration))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
