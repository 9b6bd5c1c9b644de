"""Telemetry leaves a process in batches: a background task that flushes every few tenths of a second.

Both the sidecar's exporter to the control plane (proxy/observe/export.py) and the
control plane's exporter to Zipkin (control/telemetry_zipkin.py) work this
way: the hot path only appends to a list, and the task sends what piled up,
once more on stop so the last requests before a shutdown still count.

A sender that can tell it has nothing waiting (`idle()`) does not wake an
idle process every interval: after a flush that leaves nothing behind it
sleeps until the hot path calls `wake()` with the first new item, then
waits one interval (so items still go out in batches) and flushes.
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
        self.asleep = False  # waiting for wake(): nothing was left to send
        self._wanted: asyncio.Event | None = None

    def idle(self) -> bool:
        """True when nothing waits to be sent (and only `wake()` brings more): the task may sleep."""
        return False

    def wake(self) -> None:
        """Something new waits to be sent: an asleep sender flushes it one interval from now."""
        if self.asleep:
            self.asleep = False
            self._wanted.set()

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
        self._wanted = asyncio.Event()
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
            if self.idle():  # checked with no await since: whatever comes next calls wake()
                self._wanted.clear()
                self.asleep = True
                await self._wanted.wait()
