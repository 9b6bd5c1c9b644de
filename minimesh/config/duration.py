"""Durations as Istio writes them: "10s", "0.5s", "250ms", "1m30s".

Istio's fields are protobuf `Duration`s. Kubernetes checks them with CEL's
`duration()`, which reads Go's duration syntax: a sequence of decimal numbers,
each with a unit, like "1h30m" or "1.5s". minimesh reads the same syntax so a
manifest that passes here passes `kubectl apply` too. Negative durations make
no sense for a timeout or a delay, so they are refused.
"""

import re

# Go's units, in seconds. "µs" and "us" are both microseconds.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# One "<number><unit>" piece; the unit alternation lists "ms" before "m" so
# "250ms" is not read as 250 minutes followed by garbage.
_PIECE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise ValueError with a hint otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string like '1s' or '250ms', got {text!r}")
    s = text  # no stripping: Kubernetes refuses " 1s", so minimesh does too
    if s == "0":  # Go accepts a bare zero, and only zero, without a unit.
        return 0.0
    if not s:
        raise ValueError("empty duration; write one like '1s' or '250ms'")
    if s.startswith("-"):
        raise ValueError(f"negative duration {text!r}; durations must be positive")
    if s.startswith("+"):
        s = s[1:]
    total, pos = 0.0, 0
    while pos < len(s):
        piece = _PIECE.match(s, pos)
        if piece is None:
            raise ValueError(
                f"invalid duration {text!r}; write a number and a unit (ms, s, m, h), like '1s', '250ms' or '1m30s'"
            )
        total += float(piece.group(1)) * _UNITS[piece.group(2)]
        pos = piece.end()
    if not s:
        raise ValueError("empty duration")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Istio-style spelling of a duration, for messages and `minimesh get`."""
    if seconds and seconds < 1:
        return f"{_plain(seconds * 1000)}ms"
    return f"{_plain(seconds)}s"


def _plain(x: float) -> str:
    # Never exponent notation ("1e+06"): Go's syntax has none.
    return f"{x:.6f}".rstrip("0").rstrip(".")
