"""A message body streaming through the proxy: chunks from one socket, read once by the other side.

The protocol that owns the socket `feed`s chunks as the parser finds them
and `finish`es (or `fail`s) the stream; whoever forwards the body iterates
it with `async for`. Back-pressure is the point: past HIGH_WATER bytes
waiting, the source socket stops being read (`pause_reading`), so a fast
sender and a slow receiver never pile a body up in the proxy's memory; once
the reader has taken it down to LOW_WATER, reading resumes.
"""

from __future__ import annotations

import asyncio
from collections import deque

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class BodyStream:
    def __init__(self, flow):
        self._flow = flow  # the source's flow control: pause(reason) / resume(reason)
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._paused = False
        self._waiter: asyncio.Future | None = None
        self.done = False  # the whole body has arrived
        self.error: BaseException | None = None
        self.taken = False  # someone started reading it

    # --- the socket's side ----------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            self._flow.pause("body")
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the reader's side ----------------------------------------------------------

    def __aiter__(self):
        self.taken = True
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self.error is not None:
                raise self.error
            if self.done:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size <= LOW_WATER:
            self._paused = False
            self._flow.resume("body")
        return chunk

    @property
    def complete(self) -> bool:
        """Everything arrived and was read."""
        return self.done and not self._chunks
