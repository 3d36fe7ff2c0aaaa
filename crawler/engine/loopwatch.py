"""Notices when the event loop was blocked, and for how long.

A spider callback that computes for seconds or calls `time.sleep` holds up every task of the
crawl: bytes that arrived meanwhile wait in the socket until the loop runs again, so a 5 ms
answer would be timed at seconds, and progress lines stop. A heartbeat task that wakes every
`tick` seconds sees such stalls as lateness; response times leave them out, and the callback
that caused one is named in a warning (once per callback).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("crawler")

TICK = 0.05  # seconds between heartbeats
STALL = 0.1  # lateness of a heartbeat that counts as the loop having been blocked
BLOCKING = 0.2  # seconds a callback may hold the loop before it is warned about
KEPT = 256  # stalls remembered (each fetch subtracts those it overlapped)


class LoopWatch:
    """Run `beat()` as a task; ask `blocked(start, end)` how much of that span the loop
    spent blocked, and `callback_step(...)` about a callback that ran from start to end."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()  # the last heartbeat
        self._stalls: deque[tuple[float, float]] = deque(maxlen=KEPT)
        self._warned: set[str] = set()

    async def beat(self) -> None:
        self._last = self._clock()  # not from when this watch was made (seeding may be long)
        while True:
            await asyncio.sleep(TICK)
            now = self._clock()
            due = self._last + TICK
            if now - due > STALL:
                self._stalls.append((due, now))
            self._last = now

    def blocked(self, start: float, end: float) -> float:
        """Seconds of [start, end] during which the loop was blocked, counting a stall that
        is still going on as seen from `end` (the heartbeat has not woken up since)."""
        total = 0.0
        for since, until in reversed(self._stalls):
            if until <= start:
                break
            total += min(until, end) - max(since, start)
        due = self._last + TICK
        if end - due > STALL:  # blocked until just now: the heartbeat is late
            total += end - max(due, start)
        return max(0.0, total)

    def callback_step(self, name: str, url: str, start: float, end: float) -> None:
        """A callback ran from `start` to `end` without yielding: if the loop was blocked
        all that time, that callback blocked it. Warned once per callback name."""
        if end - start < BLOCKING or name in self._warned:
            return
        held = self.blocked(start, end)
        if held < BLOCKING:
            return  # it awaited something, and the loop went on meanwhile
        self._warned.add(name)
        log.warning("callback %s blocked the event loop for %.1fs (on %s): no other request "
                    "moves meanwhile. Callbacks must not block; run slow work with "
                    "`await asyncio.to_thread(...)`", name, held, url,
                    extra={"url": url, "reason": f"callback {name} blocked the event loop"})
