"""Telemetry leaves a process in batches: a background task that flushes every few tenths of a second.

Both the sidecar's exporter to the control plane (proxy/observe/export.py) and the
control plane's exporter to Zipkin (control/telemetry_zipkin.py) work this
way: the hot path only appends to a list, and the task sends what piled up,
once more on stop so the last requests before a shutdown still count.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

import aiohttp


class BatchSender(ABC):
    """Calls `flush()` every `interval` seconds from a background task, and once more on `stop()`."""

    task_name = "batches"

    def __init__(self, interval: float):
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    @abstractmethod
    async def flush(self) -> None:
        """Send what piled up since the last call; never raise (telemetry is best effort)."""

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5), trust_env=False)
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self.flush()
            await self._session.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
