"""A budget of bytes shared by the workers: how much HTML may be held as parsed trees at once.

lexbor's tree takes up to ~30 bytes of memory a byte of markup (a page of a million short
links: 400 MB for 16 MB), so sixteen workers each parsing a page at the body cap would take
gigabytes. Big pages wait for room instead; small ones never ask.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ByteBudget:
    """`size = await budget.acquire(n)` ... `budget.release(size)`. A claim over the whole
    budget waits for all of it, so one page bigger than the budget still goes, alone.
    Claims are granted in order (FIFO): a big page is not overtaken forever by small ones."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, size: int) -> int:
        size = min(size, self.limit)
        if not self._waiters and self.used + size <= self.limit:
            self.used += size
            return size
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(size)  # granted just as it was cancelled: give it back
            else:
                self._waiters.remove(entry)
                self._grant()  # those behind it may fit now
            raise
        return size

    def release(self, size: int) -> None:
        self.used -= size
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            size, waiter = self._waiters.popleft()
            self.used += size
            waiter.set_result(None)
