"""The watch: how a sidecar learns, within milliseconds, that its config changed.

Theory of operation. A sidecar asks "GET /v1/watch?version=V": "here is the
snapshot version I hold; tell me when there is a different one". If the
control plane already has a different version, it answers at once with the
full snapshot. Otherwise it holds the request open (a long poll) until
something changes — a config apply, an instance joining or leaving — or until
the client's timeout passes, and then answers 204 so the sidecar simply asks
again. This is the shape of Envoy's xDS and of Kubernetes' watch, without a
streaming protocol: one HTTP request per change.

Nothing polls. Every change calls `ChangeFeed.notify()`, which sets the
current `asyncio.Event` and replaces it with a fresh one; each waiting
request was sleeping on the old event, wakes, and re-checks its own
condition. Because the check and the grab of the event happen with no
`await` in between, a change can never slip between them.

Warm-up. Right after a restart the registry is empty: the sidecars have not
heartbeated yet. A sidecar that already holds a snapshot would be told "no
endpoints anywhere" and drop every upstream. So for the first few seconds a
node that *has* a version is held, while heartbeats refill the registry; a
node with no version (a fresh sidecar, nothing to lose) is answered at once.
Istio's pilot has the same idea in its "initial sync" before serving xDS.
"""

from __future__ import annotations

import asyncio
from typing import Callable


def held_for_warmup(now: float, started_at: float, warmup: float, client_version: str) -> bool:
    """Whether a watch must wait for the registry to refill before it is answered."""
    return bool(client_version) and now - started_at < warmup


def should_answer(current_version: str, client_version: str, held: bool) -> bool:
    """A watch is answered when the client is behind and not held by the warm-up."""
    return current_version != client_version and not held


class ChangeFeed:
    """Wakes every waiting watch whenever something they might care about changed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ready() is true, re-checking after each change; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            event = self._event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return ready()
        return True
