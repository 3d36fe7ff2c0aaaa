"""Write transactions as tasks of their own, for both stores: shielded, so that a caller
cancelled mid-way (a worker at the end of a stop) does not leave the connection between
BEGIN and COMMIT (the transaction finishes on its own); `drain()` waits for those under
way; `inside()` says whether the current task is one (a read there would wait on the
store's lock, which its own transaction holds)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class ShieldedWrites:
    def __init__(self) -> None:
        self._running: set[asyncio.Future[Any]] = set()  # started, not ended

    async def run(self, transaction: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(transaction)
        task.add_done_callback(_retrieve)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    def inside(self) -> bool:
        return asyncio.current_task() in self._running

    async def drain(self) -> None:
        """Wait for the transactions under way to end (however they end)."""
        if self._running:
            await asyncio.wait(set(self._running))


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a transaction's error as seen: its caller may have been cancelled meanwhile, and
    the error surfaces again at the next write anyway."""
    if not task.cancelled():
        task.exception()
