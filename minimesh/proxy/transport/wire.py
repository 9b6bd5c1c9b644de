"""HTTP/1.1 on the wire: the bytes of a message head and of a chunked body (RFC 9112).

The parser side is llhttp (through `httptools`); this is the writing side,
kept to string joins because it runs twice per hop. Header values that came
off the wire were decoded as latin-1, so encoding them back as latin-1 gives
the client's bytes unchanged. A value a layer made up could hold a line
break; RFC 9110 §5.5 forbids CR and LF in a field value, so they become spaces
rather than a second, smuggled header line.
"""

from __future__ import annotations

from http import HTTPStatus

REASONS = {s.value: s.phrase for s in HTTPStatus}
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _fields(headers, skip: frozenset = frozenset()) -> str:
    items = [kv for kv in headers.items() if kv[0].lower() not in skip] if skip else headers.items()
    if not items:
        return ""
    try:
        text = "\r\n".join(map(": ".join, items)) + "\r\n"  # one C-level join: no f-string per field
    except TypeError:  # a layer set a value that is not a string
        text = ""
    n = len(items)
    if text.count("\n") != n or text.count("\r") != n:
        # Some value carried its own CR or LF, or was not text: flatten it (see the module's note).
        text = "".join(f"{k}: {_flat(str(v))}\r\n" for k, v in items)
    return text


def _flat(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def _encode(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # a layer's own text (an error reason) with non-latin-1 characters
        return text.encode("utf-8")


def response_head(status: int, headers, extra: str = "") -> bytes:
    reason = REASONS.get(status, "Unknown")
    return _encode(f"HTTP/1.1 {status} {reason}\r\n{_fields(headers)}{extra}\r\n")


_NOT_FORWARDED = frozenset({"host", "content-length"})


def request_head(method: str, path: str, authority: str, headers, extra: str = "") -> bytes:
    """The head of a request to an upstream: Host first, then the request's fields, then `extra`."""
    return _encode(f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\n"
                   f"{_fields(headers, _NOT_FORWARDED)}{extra}\r\n")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)
