"""The proxy's dice, and how a test makes them repeatable.

Every random choice a proxy makes — the weighted split of a canary, the two
endpoints least-request compares, the jitter of a retry's backoff — uses
Python's `random` module. Left alone, it is seeded from the OS and no two runs
agree, which is what production wants. A statistical test wants the opposite:
"2,000 requests land on v2 10 % ± 2 %" is true about 99.7 % of the time with
fair dice, and a test suite that fails one run in 300 teaches people to ignore
it. So when `MINIMESH_SEED` is set (a test sets it; `minimesh up` passes its
environment on to every proxy), each proxy seeds the module with the seed and
its own instance name: the same stack, sent the same traffic, makes the same
choices — and a broken split still fails, because the dice are fair, just
fixed.
"""

from __future__ import annotations

import logging
import os
import random

log = logging.getLogger("minimesh.proxy")

SEED_ENV = "MINIMESH_SEED"


def seed_from_env(instance: str, environ=os.environ, rng=random) -> str | None:
    """Seed `rng` from MINIMESH_SEED and `instance`; returns the seed used, or None if unset."""
    seed = environ.get(SEED_ENV, "").strip()
    if not seed:
        return None
    full = f"{seed}:{instance}"
    rng.seed(full)
    log.info("random choices seeded with %s=%s (for repeatable tests)", SEED_ENV, seed)
    return full
