"""How much a client may ask of a listener, and for how long: the transport's limits.

Every number has Envoy's default where Envoy has one, so what a learner sees
here is what Istio does:

    max_header_bytes    60 KiB  request line and headers together (max_request_headers_kb)
    max_header_fields   100     header fields per request (max_headers_count)
    header_timeout      10 s    from a request's first byte (or a new connection) to its last header
                                (request_headers_timeout; Istio sets 10 s on its gateways)
    idle_timeout        1 h     a kept-alive connection with no request in flight (idle_timeout)
    stream_idle_timeout 5 min   a request with no bytes moving either way (stream_idle_timeout)
    max_connections     1024    open connections per listener; the next one is closed and counted

The same header limits bound what an upstream may send back (a larger
answer is a 502). All are set on the sidecar's command line and shown in its
`/config_dump`. They are checked by each connection as bytes arrive, and the
timeouts by one sweep per listener (`Watchdog` in http_server.py), so a
request pays for no timer of its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 60 * 1024
    max_header_fields: int = 100
    header_timeout: float = 10.0
    idle_timeout: float = 3600.0
    stream_idle_timeout: float = 300.0
    max_connections: int = 1024

    def __post_init__(self):
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value}")

    def sweep_interval(self) -> float:
        """How often the watchdog looks: a quarter of the shortest timeout, 50 ms to 1 s."""
        shortest = min(self.header_timeout, self.idle_timeout, self.stream_idle_timeout)
        return min(1.0, max(0.05, shortest / 4))

    def as_json(self) -> dict:
        return asdict(self)


DEFAULT_LIMITS = Limits()
