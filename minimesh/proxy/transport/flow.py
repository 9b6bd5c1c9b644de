"""Flow control for one socket: stop reading while someone cannot keep up, wait while writes pile up.

Reading can be paused for several reasons at once — a body nobody has read
yet (body.py), pipelined requests queued behind the one being answered, the
other end of a WebSocket tunnel being slow — and resumes only when none is
left. Writing is asyncio's own scheme: the transport calls `pause_writing`
when its buffer passes the high-water mark, and a writer that cares awaits
`drain()` before writing more.
"""

from __future__ import annotations

import asyncio


class Flow:
    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self._reasons: set[str] = set()
        self._writable: asyncio.Future | None = None  # set while the write buffer is over its mark
        self.closed = False

    def pause(self, reason: str) -> None:
        if not self._reasons and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._reasons.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if not self._reasons and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # --- writing ---------------------------------------------------------------------

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("the connection closed")
        if self._writable is not None:
            await asyncio.shield(self._writable)
            if self.closed:
                raise ConnectionResetError("the connection closed")

    def lost(self) -> None:
        self.closed = True
        self.resume_writing()
