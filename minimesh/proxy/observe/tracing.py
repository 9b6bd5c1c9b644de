"""Trace context: which trace a request belongs to, and how the next hop learns it.

Theory of operation. A trace is a tree of spans, one per piece of work, that
share one trace-id. Each hop reads the trace context the caller sent,
starts its own span as a child of the caller's span, and tells the next hop
"my span is your parent" by rewriting the headers. The app in between must
copy the headers from the request it serves onto the calls it makes (only
the app knows which outgoing call belongs to which incoming request); if it
does not, the trace falls apart into pieces — lesson 05's break-it.

minimesh speaks W3C Trace Context Level 1 (https://www.w3.org/TR/trace-context/):

    traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
                 version-trace-id (32 hex)-parent-id (16 hex)-trace-flags

and accepts Zipkin's B3 on input (`b3: {traceid}-{spanid}-{sampled}` or the
`x-b3-*` headers), rewriting B3 headers it finds so a B3-only app keeps
working. Everything here is pure: headers in, data out.
"""

from __future__ import annotations

import os
import random
import re
from typing import NamedTuple

# "HEXDIGLC = DIGIT / "a" / "b" / "c" / "d" / "e" / "f" ; lowercase hex character"
_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = 0x01  # "the least significant bit (right-most), denotes the caller may have recorded trace data"

# tracestate grammar (§3.3.1.3):
#   key   = simple-key / multi-tenant-key
#   simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
#   multi-tenant-key = tenant-id "@" system-id
#   tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
#   system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
#   value = 0*255(chr) nblk-chr ; chr = %x20 / nblk-chr ; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
_KEY = re.compile(r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})\Z")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]\Z")
MAX_MEMBERS = 32  # "There can be a maximum of 32 list-members in a list."
MAX_TRACESTATE = 512  # "Vendors SHOULD propagate at least 512 characters of a combined header."
LARGE_MEMBER = 128  # "entries larger than 128 characters long SHOULD be removed first"

B3_HEADERS = ("x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags")


class Parent(NamedTuple):
    """The caller's side of a trace, as read from the request headers."""

    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex: the caller's span, our span's parent
    sampled: bool = True
    tracestate: str = ""  # normalised; "" when there is none


def _is_hex(s: str, length: int) -> bool:
    return len(s) == length and _HEX.issuperset(s)


# The common case, checked in one go: version 00, lowercase hex, flags 00 or 01, nothing after them.
_VERSION_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])\Z")
_FLAGS = {"00": 0, "01": SAMPLED}


def parse_traceparent(value: str) -> tuple[str, str, int] | None:
    """(trace-id, parent-id, trace-flags) from a traceparent value, or None when it must be ignored."""
    common = _VERSION_00.match(value)
    if common is not None:
        trace_id, parent_id, flags = common.groups()
        if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
            return None
        return trace_id, parent_id, _FLAGS[flags]
    value = value.strip(" \t")
    version = value[:2]
    if len(value) < 55 or not _is_hex(version, 2) or version == "ff":
        # "Version ff is invalid"; too short for any version: restart the trace.
        return None
    if version == "00":
        if len(value) != 55:  # version 00 has exactly four fields
            return None
    elif len(value) > 55 and value[55] != "-":
        # "If a higher version is detected ... parse trace-id, parent-id and
        # trace-flags ... check that [the flags are] followed by a dash or end".
        return None
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    trace_id, parent_id, flags = value[3:35], value[36:52], value[53:55]
    if not (_is_hex(trace_id, 32) and _is_hex(parent_id, 16) and _is_hex(flags, 2)):
        return None
    # "All bytes as zero ... is considered an invalid value" (trace-id and parent-id).
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    bits = int(flags, 16)
    if version != "00":
        bits &= SAMPLED  # a future version's other flags mean nothing to a version-00 vendor
    return trace_id, parent_id, bits


def parse_tracestate(values) -> str:
    """Normalise the combined tracestate header(s): invalid or duplicate members dropped, limits applied.

    "Invalid tracestate entries MAY also be discarded"; a key appears once (the
    left-most, most recent, wins); past 32 members the right-most go; past 512
    characters members over 128 characters go first, then from the right.
    """
    if not values:
        return ""
    members: list[str] = []
    seen: set[str] = set()
    for header in values:
        for raw in header.split(","):
            member = raw.strip(" \t")
            if not member:
                continue  # "empty list-members are allowed" and ignored
            key, sep, val = member.partition("=")
            if not sep or not _KEY.match(key) or not _VALUE.match(val) or key in seen:
                continue
            seen.add(key)
            members.append(f"{key}={val}")
    del members[MAX_MEMBERS:]
    if len(",".join(members)) > MAX_TRACESTATE:
        members = [m for m in members if len(m) <= LARGE_MEMBER]
        while members and len(",".join(members)) > MAX_TRACESTATE:
            members.pop()
    return ",".join(members)


def parse_b3_single(value: str) -> tuple[str, str, bool] | None:
    """(trace-id as 32 hex, span-id, sampled) from `b3: {traceid}-{spanid}[-{sampled}[-{parent}]]`."""
    parts = value.strip().lower().split("-")
    if len(parts) < 2 or len(parts) > 4:
        return None  # "0", "1", "d" alone only carry a sampling decision
    trace_id, span_id = _b3_trace_id(parts[0]), parts[1]
    if trace_id is None or not _is_hex(span_id, 16) or span_id == _ZERO_SPAN:
        return None
    sampled = parts[2] != "0" if len(parts) > 2 else True
    if len(parts) > 2 and parts[2] not in ("0", "1", "d"):
        return None
    return trace_id, span_id, sampled


def parse_b3_multi(headers) -> tuple[str, str, bool] | None:
    trace_id = _b3_trace_id((headers.get("x-b3-traceid") or "").strip().lower())
    span_id = (headers.get("x-b3-spanid") or "").strip().lower()
    if trace_id is None or not _is_hex(span_id, 16) or span_id == _ZERO_SPAN:
        return None
    sampled = (headers.get("x-b3-sampled") or "1").strip().lower() not in ("0", "false")
    return trace_id, span_id, sampled or headers.get("x-b3-flags") == "1"


def _b3_trace_id(s: str) -> str | None:
    """B3 trace ids are 64 or 128 bits; a 64-bit one is left-padded to W3C's 128."""
    if not (_is_hex(s, 32) or _is_hex(s, 16)):
        return None
    s = s.rjust(32, "0")
    return None if s == _ZERO_TRACE else s


def extract(headers) -> Parent | None:
    """The caller's trace context, or None: then this hop starts a new trace.

    W3C first; "If the vendor failed to parse traceparent, it MUST NOT attempt
    to parse tracestate". B3 only when there is no traceparent at all.
    """
    traceparent = headers.getall("traceparent", ())
    if traceparent:
        # Two traceparent headers are as invalid as a malformed one.
        parsed = parse_traceparent(traceparent[0]) if len(traceparent) == 1 else None
        if parsed is None:
            return None
        trace_id, span_id, flags = parsed
        return Parent(trace_id, span_id, bool(flags & SAMPLED), parse_tracestate(headers.getall("tracestate", ())))
    single = headers.get("b3")
    if single is not None:
        parsed = parse_b3_single(single)
        return Parent(*parsed) if parsed else None
    if "x-b3-traceid" in headers:
        parsed = parse_b3_multi(headers)
        return Parent(*parsed) if parsed else None
    return None


def new_span_id(rand=None) -> str:
    while True:
        span_id = f"{rand.getrandbits(64):016x}" if rand is not None else _IDS.take(16)
        if span_id != _ZERO_SPAN:
            return span_id


def new_trace(rand=None) -> tuple[str, str]:
    """A new trace-id and our span-id in it (neither all zeros); `rand`: a seeded generator, for tests."""
    while True:
        both = f"{rand.getrandbits(192):048x}" if rand is not None else _IDS.take(48)
        trace_id, span_id = both[:32], both[32:]
        if trace_id != _ZERO_TRACE and span_id != _ZERO_SPAN:
            return trace_id, span_id


class _RandomHex:
    """Random lowercase hex for ids, read from the kernel 4 KiB at a time: a slice per id (~0.1 µs, not ~0.6)."""

    def __init__(self, size: int = 4096):
        self.size = size
        self.pool, self.at = "", 0

    def take(self, n: int) -> str:
        at = self.at
        end = at + n
        if end > len(self.pool):
            self.pool, at, end = os.urandom(self.size).hex(), 0, n
        self.at = end
        return self.pool[at:end]


_IDS = _RandomHex()
os.register_at_fork(after_in_child=lambda: setattr(_IDS, "pool", ""))  # a child draws its own ids


def inject(headers, trace_id: str, span_id: str, parent: Parent | None, sampled: bool = True) -> None:
    """Tell the next hop that `span_id` is its parent (headers changed in place).

    We always write version 00, the version we implement, even when a future
    version came in: we only understood its version-00 fields. tracestate travels on as read, normalised; with a new
    trace there is none to keep. `sampled` is the decision for a new trace; a continued one keeps its caller's.
    """
    if parent is not None:
        sampled = parent.sampled
    headers["traceparent"] = f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"
    if parent is not None and parent.tracestate:
        headers["tracestate"] = parent.tracestate
    else:
        headers.popall("tracestate", None)
    # B3 is rewritten in whichever form the request carries it, so a B3-only
    # app further on sees the same trace as everyone else.
    if "b3" in headers:
        headers["b3"] = f"{trace_id}-{span_id}-{'1' if sampled else '0'}"
    if "x-b3-traceid" in headers or "x-b3-spanid" in headers:
        headers.popall("x-b3-parentspanid", None)
        headers.popall("x-b3-flags", None)
        headers["x-b3-traceid"] = trace_id
        headers["x-b3-spanid"] = span_id
        headers["x-b3-sampled"] = "1" if sampled else "0"
