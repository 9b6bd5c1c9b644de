"""Telemetry leaves a process in batches: a background task that flushes every few tenths of a second.

Both the sidecar's exporter to the control plane (proxy/observe/export.py) and the
control plane's exporter to Zipkin (control/telemetry_zipkin.py) work this
way: the hot path only appends to a list, and the task sends what piled up,
once more on stop so the last requests before a shutdown still count.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod


class BatchSender(ABC):
    """Calls `flush()` every `interval` seconds from a background task, and once more on `stop()`."""

    task_name = "batches"

    def __init__(self, interval: float):
        self.interval = interval
        self._task: asyncio.Task | None = None

    @abstractmethod
    async def flush(self) -> None:
        """Send what piled up since the last call; never raise (telemetry is best effort)."""

    async def close(self) -> None:
        """After the last flush: let go of whatever the sender holds open (its HTTP client)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        await self.flush()
        await self.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
