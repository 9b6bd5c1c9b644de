"""Reading typed fields out of a manifest, with errors that point at them.

Every reader takes the raw value and an `At` — where that value sits (its
dotted path, and its line when the manifest came from a file) — and either
returns a clean Python value or raises ConfigError naming the place. The kind
parsers (virtualservice.py, destinationrule.py, security.py) are written only
in terms of these readers, so each rule ("a weight is 0..100") lives once.

Unknown keys are told apart from keys Istio has but minimesh does not: a typo
gets "unknown field 'retriez' (did you mean 'retries'?)", a real Istio feature
gets "not supported by minimesh", so the learner knows which one they hit.
"""

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from minimesh.errors import ConfigError

from .duration import parse_duration
from .source import Path, dotted


@dataclass(frozen=True)
class At:
    """A place in a manifest: path from the document root, plus the line table."""

    source: str
    lines: Mapping[Path, int] = field(default_factory=dict, repr=False)
    path: Path = ()
    # Shared by every At of one document: what was accepted but surprises
    # (Istio's own surprises, kept and reported at apply).
    warnings: list = field(default_factory=list, repr=False, compare=False)

    def __truediv__(self, key: str | int) -> "At":
        return At(self.source, self.lines, self.path + (key,), self.warnings)

    @property
    def field(self) -> str:
        return dotted(self.path)

    @property
    def line(self) -> int | None:
        # A missing key has no line of its own; point at its nearest parent.
        for end in range(len(self.path), -1, -1):
            line = self.lines.get(self.path[:end])
            if line is not None:
                return line
        return None

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, line=self.line, field=self.field)

    def warn(self, message: str) -> None:
        """Note a surprise here: 'file:line: field: message', shown by `minimesh apply`."""
        self.warnings.append(str(self.error(message)))


def mapping(value: Any, at: At) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise at.error(f"expected a mapping (key: value), got {_kind_of(value)}")
    for key in value:
        if not isinstance(key, str):
            raise at.error(f"keys must be strings, got {key!r}")
    return value


def check_fields(value: dict, at: At, supported: Iterable[str], istio_only: Iterable[str] = ()) -> None:
    """Refuse keys outside `supported`, saying whether Istio knows them.

    `istio_only` may map a field to one sentence on what Istio would do with
    it, which the refusal then carries ("...; Istio would ...").
    """
    istio_does = dict(istio_only) if isinstance(istio_only, Mapping) else {}
    supported, istio_only = list(supported), set(istio_only)
    for key in value:
        if key in supported:
            continue
        if key in istio_only:
            what = f"; {istio_does[key]}" if istio_does.get(key) else ""
            raise (at / key).error(
                f"field '{key}' is not supported by minimesh (supported: {', '.join(supported)}){what}"
            )
        hint = difflib.get_close_matches(key, supported + sorted(istio_only), n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; expected one of: {', '.join(supported)}"
        raise (at / key).error(f"unknown field '{key}'{suggestion}")


def require(value: dict, key: str, at: At) -> Any:
    if value.get(key) is None:
        raise (at / key).error(f"'{key}' is required")
    return value[key]


def sequence(value: Any, at: At) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise at.error(f"expected a list (items starting with '-'), got {_kind_of(value)}")
    return value


def string(value: Any, at: At) -> str:
    if not isinstance(value, str):
        raise at.error(f"expected a string, got {_kind_of(value)}; quote it if it is meant as text")
    return value


def strings(value: Any, at: At) -> tuple[str, ...]:
    return tuple(string(item, at / i) for i, item in enumerate(sequence(value, at)))


def integer(value: Any, at: At, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise at.error(f"expected a whole number, got {_kind_of(value)}")
    _check_range(value, at, lo, hi)
    return value


def boolean(value: Any, at: At) -> bool:
    if not isinstance(value, bool):
        raise at.error(f"expected true or false, got {_kind_of(value)}")
    return value


def number(value: Any, at: At, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise at.error(f"expected a number, got {_kind_of(value)}")
    _check_range(value, at, lo, hi)
    return float(value)


def duration(value: Any, at: At) -> float:
    """A duration of at least 1ms: Istio's CRDs refuse anything shorter."""
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise at.error(str(e)) from e
    if seconds < 0.001:
        raise at.error(f"duration {value!r} is too short; it must be at least 1ms")
    return seconds


def enum(value: Any, at: At, allowed: Iterable[str], istio_only: Iterable[str] = ()) -> str:
    allowed = list(allowed)
    text = string(value, at)
    if text in allowed:
        return text
    if text in set(istio_only):
        raise at.error(f"value '{text}' is not supported by minimesh (supported: {', '.join(allowed)})")
    raise at.error(f"unknown value '{text}'; expected one of: {', '.join(allowed)}")


def percentage(value: Any, at: At) -> float:
    """Istio's Percent message: {value: 0..100}."""
    block = mapping(value, at)
    check_fields(block, at, ["value"])
    return number(block.get("value", 0.0), at / "value", 0, 100)


def labels(value: Any, at: At) -> dict[str, str]:
    """A label map; Istio refuses wildcards and empty keys in selectors."""
    out = {}
    for key, val in mapping(value, at).items():
        if not key or "*" in key:
            raise (at / key).error(f"label key {key!r} must be non-empty and contain no '*'")
        text = string(val, at / key)
        if "*" in text:
            raise (at / key).error(f"label value {text!r} must not contain '*'")
        out[key] = text
    return out


def regex(value: str, at: At) -> re.Pattern:
    """Compile a regex, refusing what RE2 (Envoy's and Istio's engine) lacks."""
    # RE2 has no lookaround and no backreferences; Python's re has both.
    if re.search(r"\(\?<?[=!]|\(\?P=|\\[1-9]", value):
        raise at.error(f"regex {value!r} uses lookaround or a backreference, which RE2 (Envoy's regex engine) does not support")
    try:
        return re.compile(value)
    except re.error as e:
        raise at.error(f"invalid regex {value!r}: {e}") from e


def _check_range(value: float, at: At, lo: float | None, hi: float | None) -> None:
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise at.error(f"{value} is out of range; it must be between {lo} and {hi}")
    if lo is not None and value < lo:
        raise at.error(f"{value} is too small; it must be at least {lo}")
    if hi is not None and value > hi:
        raise at.error(f"{value} is too large; it must be at most {hi}")


def _kind_of(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    if value is None:
        return "nothing (null)"
    return f"{names.get(type(value), type(value).__name__)} ({value!r})" if not isinstance(value, dict | list) else names[type(value)]
