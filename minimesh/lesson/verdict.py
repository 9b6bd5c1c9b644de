"""A verdict: one expectation of a lesson step, met or not, with what was measured and how to fix it.

Its own module so that the checks (check.py, security_checks.py,
trace_check.py) all import it from here and never from each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    ok: bool
    what: str
    detail: str = ""
    hint: str = ""
