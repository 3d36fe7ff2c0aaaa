"""The host leases of a crawl shared with other processes (a store that says `shared`, e.g.
PostgreSQL): the process fetches only from hosts it holds, so its frontier's per-host limits
and delays (Crawl-delay and Retry-After included) are the hosts' global ones.

`HostShare.keep()` runs beside the workers: it renews the leases every third of a lease
(a host lost to another process leaves the frontier: its requests are the other's now, and
ours in flight will be fenced by the store), and about every second hands back the hosts
the frontier has nothing for, each with what is left of its delay here, so the next holder
keeps the gap.

A renewal that does not get through (the database restarted, the network cut: the store
is connecting again) is waited for, but not past `ABANDON_AT` of a lease since the last one
that did: then another process may take our hosts any moment, so we stop sending to all of
them (`store.abandon()`) and go on, once the store is back, with new leases.

A host newly leased comes with the wait before its gate opens, which
`Intake` turns into the frontier's clock for it (`Frontier.hold`): no clock crosses
processes, only durations from the database's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from crawler.config import CrawlConfig
from crawler.engine.jobs import Work
from crawler.policy.frontier import Frontier
from storage import Store

T = TypeVar("T")
HAND_BACK_EVERY = 1.0  # seconds: how long an idle host stays ours, at most, before it goes
# Of a lease, how long since the start of the last renewal that got through before we stop
# sending to our hosts: the rest is margin for the database's clock and our own to differ in
# rate, and for a request popped to be sent.
ABANDON_AT = 0.8


def hostname(key: str) -> str:
    """The host of a frontier key ("host:port"), as the store names it."""
    return key.rsplit(":", 1)[0].removeprefix("[").removesuffix("]")


class HostShare:
    def __init__(self, store: Store, frontier: Frontier[Work], *, changed: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._frontier = frontier
        self._changed = changed  # the claim window looks again: work may be ours now
        self._clock = clock
        self.lost = 0  # hosts taken over by another process while we held them
        self._told: dict[str, float] = {}  # the delays the store was last told
        self._renewed = clock()  # when the last renewal that got through began
        self._abandoned = False  # since then, our leases were given up (abandon())
        # Drops every job of a host, in the frontier and wherever else the run holds one
        # (waiting for a robots.txt: RobotsCoordinator.forget).
        self.forget: Callable[[str], object] = frontier.withdraw
        store.watch(self._drop)

    @classmethod
    def of(cls, store: Store, frontier: Frontier[Work], config: CrawlConfig,
           changed: Callable[[], None], clock: Callable[[], float]) -> HostShare | None:
        """The host leases of a run on `store`, if it is shared: as many hosts held as
        twice the workers. A host's delay keeps it from having a request out all the time
        (at 0.1 s and pages answered in 0.08 s, one worker is busy with it 80 % of the time,
        whatever its per-host limit), so fewer would leave workers idle."""
        if not store.shared:
            return None
        store.plan(max(2, 2 * config.workers), config.delay)
        return cls(store, frontier, changed=changed, clock=clock)

    async def keep(self) -> None:
        """Renew and hand back until cancelled; then the idle hosts go back at once, with
        their delay left (those with requests still leased go at the run's end)."""
        every = self._store.lease / 3
        self._renewed = self._clock()
        try:
            while True:
                await asyncio.sleep(min(every, HAND_BACK_EVERY))
                if self._abandoned or self._clock() - self._renewed >= every * 0.9:
                    began = self._clock()
                    await self._watching(self._store.renew())  # lost hosts come to _drop
                    # After an abandon, what we hold was leased once the store was back,
                    # just before this renewal ended, not when it began.
                    self._renewed = self._clock() if self._abandoned else began
                    self._abandoned = False
                await self._watching(
                    self._store.hand_back(self.gaps, delays=self.new_delays()))
                self._changed()
        except asyncio.CancelledError:
            await self._store.hand_back(self.gaps)
            raise

    async def _watching(self, call: Awaitable[T]) -> T:
        """`call`'s result; while it hangs (the store connecting again), our leases are
        abandoned once they may have run out. A store that gave up raises here."""
        task = asyncio.ensure_future(call)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=min(HAND_BACK_EVERY,
                                                       self._store.lease / 20))
                if (not self._abandoned
                        and self._clock() - self._renewed > self._store.lease * ABANDON_AT):
                    self._store.abandon()  # our hosts are lost: withdrawn through _drop
                    self._abandoned = True
        finally:
            if not task.done():
                task.cancel()
        return task.result()

    def gaps(self) -> dict[str, float]:
        """Each host's delay left here, in seconds (hosts with none are left out)."""
        gaps: dict[str, float] = {}
        for key, left in self._frontier.clocks():
            host = hostname(key)
            gaps[host] = max(left, gaps.get(host, 0.0))
        return gaps

    def new_delays(self) -> dict[str, float]:
        """The delay in force of each host here, where it changed since last told."""
        delays: dict[str, float] = {}
        for key, *_, gap in self._frontier.activity():
            host = hostname(key)
            delays[host] = max(gap, delays.get(host, 0.0))
        new = {h: d for h, d in delays.items() if self._told.get(h) != d}
        self._told.update(new)
        return new

    def _drop(self, lost: set[str]) -> None:
        """Hosts no longer ours: their requests here leave the frontier unfetched."""
        if not lost:
            return
        self.lost += len(lost)
        for key in [k for k, *_ in self._frontier.activity() if hostname(k) in lost]:
            self.forget(key)  # another process holds them now

