"""What all the processes of a crawl they share have done together, for the live display
and the progress lines ("all processes: 3 running · 12,345 done · ..."): read from the store
by a task of its own every few seconds, never by a frame nor on the per-request path (a
count scans the crawl, and the store's one connection is the one its commits use)."""

from __future__ import annotations

import asyncio
import logging

from crawler.errors import CrawlError
from crawler.observe.metrics import Metrics, SharedTotals
from storage import Store

log = logging.getLogger("crawler")

EVERY = 2.0  # seconds between two reads, at least
# A read holds the store's connection (a count scans the crawl): at most this share of
# the time, however big the crawl, so that claims and commits hardly wait for it.
SHARE = 0.05
MOST = 30.0  # seconds between two reads, at most (after one that waited out a reconnection)


class SharedView:
    """Keeps `metrics.shared` (what snapshots show) to the figures as last read."""

    def __init__(self, store: Store, metrics: Metrics, every: float = EVERY) -> None:
        self._store = store
        self._metrics = metrics
        self._every = every

    @classmethod
    def of(cls, store: Store, metrics: Metrics) -> SharedView | None:
        """One for a store other processes share; None for one a process has to itself."""
        return cls(store, metrics) if store.shared else None

    async def read(self) -> SharedTotals:
        counts = await self._store.counts()
        processes = await self._store.processes()
        return SharedTotals(sum(1 for p in processes if p.live), counts.done, counts.queued,
                            counts.leased, counts.failed, counts.items)

    async def keep(self) -> None:
        """Read every `every` seconds until cancelled. A read that fails leaves the last
        figures shown: they are not worth stopping a crawl for (the crawl's own statements
        meet the same store and say what is wrong)."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            # Shielded: cancelled at the run's end, a read under way still ends cleanly
            # and lets the connection go to the run's last commit.
            try:
                self._metrics.shared = await asyncio.shield(self.read())
            except CrawlError as exc:
                log.debug("could not read the shared crawl's figures: %s", exc)
            await asyncio.sleep(pause(loop.time() - began, self._every))


def pause(took: float, every: float = EVERY) -> float:
    """Seconds to wait after a read that took `took` seconds."""
    return min(MOST, max(every, took / SHARE))
