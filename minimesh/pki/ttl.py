"""Certificate lifetimes as the user writes them: "24h", "20s", "1h30m"."""

from minimesh.config.duration import parse_duration
from minimesh.errors import UserError

MIN_CERT_TTL = 2.0  # below this, renewal (at half-life) would be a busy loop


def parse_cert_ttl(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise UserError(f"--cert-ttl / MINIMESH_CERT_TTL: {e}") from e
    if seconds < MIN_CERT_TTL:
        raise UserError(f"--cert-ttl / MINIMESH_CERT_TTL: {text!r} is too short; use at least {MIN_CERT_TTL:g}s")
    return seconds
