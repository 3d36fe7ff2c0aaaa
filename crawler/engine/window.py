"""The claim window: the leased requests a run holds in memory, and the one place that talks
to the store about claims and outcomes.

It leases requests from the store in batches (`Store.claim`), hands each to an intake that
queues it in the frontier (or ends it at once), hands the workers what the frontier lets
start, records every outcome (`Store.record`) and keeps the run's `max_pages` budget. When
there is nothing to hand out it sleeps until something changes (`wake()`): an outcome
recorded, a request released, a refill, or the first retry due.

What it assumes of the store is here and nowhere else: that a claim that came back short
means nothing new is due until we record an outcome (or a retry's time comes). That holds
while this process is the store's only writer; a `shared` store (other processes add work
too, hosts are leased: hostshare.py) is looked at again whenever `HostShare` wakes us, and
no sooner than `SHARED_POLL` when what is due is not ours to claim yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable

from crawler.engine.jobs import Work
from crawler.observe.metrics import Metrics
from crawler.policy.frontier import Frontier
from storage import Defer, Failure, LeasedRequest, Outcome, Retry, Store

Admit = Callable[[LeasedRequest], Outcome | None]
"""Queues a leased request in the frontier, or returns the outcome that ends it at once
(`crawler.engine.intake.Intake.admit`)."""


SHARED_POLL = 0.1  # seconds: the least wait for work due in a shared store but not ours yet


class WindowState(enum.Enum):
    OPEN = "open"
    DRAINED = "drained"  # nothing is left to fetch: the store has no queued request
    CLOSED = "closed"  # the run stops taking work


class ClaimWindow:
    """`job = await window.next_job()` until it returns None; `await window.record(outcome)`
    for each outcome. `size` is how many leased requests it keeps in memory at most."""

    def __init__(self, store: Store, frontier: Frontier[Work], metrics: Metrics, *,
                 size: int, max_pages: int | None, finished_before: int, intake: Admit,
                 held: Callable[[], int], wall_clock: Callable[[], float]) -> None:
        self._store = store
        self._frontier = frontier
        self._metrics = metrics
        self._size = size
        self._max_pages = max_pages
        self._intake = intake
        self._held = held  # leased requests held outside the frontier (waiting for robots.txt)
        self._wall = wall_clock
        self.state = WindowState.OPEN
        self._changed = asyncio.Event()
        self.settle: Callable[[Failure], Awaitable[Failure]] | None = None
        """What the crawl makes of a failure before it is stored (a request's errback)."""
        self._refilling = False
        self._recorded = 0  # outcomes recorded: a change the store may not have shown us yet
        self._exhausted_at = -1  # value of _recorded when a claim last came back short
        self._finished = 0  # requests this run took to done or failed (for max_pages)
        self._finished_before = finished_before  # and the runs before it
        self._least_wait = SHARED_POLL if store.shared else 0.0
        self._asking = False  # a worker is asking the store when its next request is due

    async def next_job(self) -> Work | None:
        """The next job a worker may start now, waiting for one if need be; None once the
        window is drained (nothing is left to fetch) or closed."""
        while self.state is WindowState.OPEN:
            popped = self._frontier.pop()
            if popped is not None:
                return popped[1]
            if self._should_refill():
                await self._refill()
            elif not self._quiet():
                # Hosts are waiting out their delay, or requests in flight may add work.
                await self._wait(self._frontier.wait_time())
            elif self._asking:
                await self._wait(None)  # another worker asks the store: it wakes us
            else:
                due = await self._ask_due()
                if self.state is not WindowState.OPEN:
                    break  # closed while we asked the store
                if due is None:
                    self.state = WindowState.DRAINED
                    self.wake()
                    return None
                # Only retries waiting for their time remain: sleep until the first is due.
                await self._wait(max(self._least_wait, due - self._wall()))
                self._exhausted_at = -1
        return None

    async def _ask_due(self) -> float | None:
        """When the store's first request is due (None: nothing is left). One worker asks
        at a time: the others wait for what it finds (a shared store is asked often)."""
        if self.budget() == 0:
            return None
        self._asking = True
        try:
            return await self._store.next_due()
        finally:
            self._asking = False

    async def record(self, outcome: Outcome) -> None:
        if self.settle is not None and isinstance(outcome, Failure):
            outcome = await self.settle(outcome)
        self._recorded += 1
        if not isinstance(outcome, Retry | Defer):  # those go back to the queue
            self._finished += 1
        # Shielded: a worker cancelled at the end of a stop must not cut a write in half.
        await asyncio.shield(self._store.record(outcome))
        self.wake()

    def close(self) -> None:
        """Take no more work: every `next_job()` returns None."""
        if self.state is WindowState.OPEN:
            self.state = WindowState.CLOSED
        self.wake()

    def look_again(self) -> None:
        """The store may have work for us that no outcome of ours made (a shared store)."""
        self._exhausted_at = -1
        self.wake()

    def wake(self) -> None:
        """Something changed (a request ended, an outcome was recorded): waiters look again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def budget(self) -> int | None:
        """Requests `max_pages` still lets this run take from the store (None: no limit)."""
        if self._max_pages is None:
            return None
        # A job counts as in flight from pop() until its outcome is recorded.
        taken = (self._finished_before + self._finished + self._in_memory()
                 + self._metrics.in_flight)
        return max(0, self._max_pages - taken)

    def _in_memory(self) -> int:
        return len(self._frontier) + self._held()

    def _should_refill(self) -> bool:
        if self._refilling or self._in_memory() >= self._size // 2:
            return False
        if self._exhausted_at == self._recorded:
            return False
        budget = self.budget()
        return budget is None or budget > 0

    async def _refill(self) -> None:
        self._refilling = True
        try:
            seen = self._recorded
            want = self._size - self._in_memory()
            budget = self.budget()
            if budget is not None:
                want = min(want, budget)
            leases = await self._store.claim(want, self._wall())
            ended = [o for o in map(self._intake, leases) if o is not None]
            if len(leases) < want:
                self._exhausted_at = seen
            self._frontier.prune()
        finally:
            self._refilling = False
            self.wake()
        for outcome in ended:
            await self.record(outcome)

    def _quiet(self) -> bool:
        """Nothing queued here, nothing in flight, and the store has nothing due for us."""
        if self._in_memory() or self._frontier.in_flight or self._metrics.in_flight:
            return False
        if self._refilling:
            return False
        return self._exhausted_at == self._recorded or self.budget() == 0

    async def _wait(self, seconds: float | None) -> None:
        """Sleep until something changes (a release, a record, a refill) or `seconds` pass."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
