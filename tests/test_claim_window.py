"""The claim window on its own: leasing from a real SQLite store into a frontier, the page
budget, wake-ups, and how it ends. No crawler, no transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crawler.engine.jobs import Job, Work
from crawler.engine.window import ClaimWindow, WindowState
from crawler.observe.metrics import Metrics
from crawler.policy.frontier import Frontier
from crawler.urls.canon import CanonicalURL, host_key, parsed
from storage import Completion, Failure, LeasedRequest, NewRequest, Outcome, Retry
from storage.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(tmp_path / "state.db")
    await opened.open_crawl("window", "{}", fresh=False)
    try:
        yield opened
    finally:
        await opened.close()


class Window:
    """A window over a frontier with no delays, queueing every lease (unless told to end
    one), and the metrics whose in-flight count the workers would keep."""

    def __init__(self, store: SQLiteStore, *, max_pages: int | None = None,
                 finished_before: int = 0, refuse: str = "") -> None:
        self.frontier: Frontier[Work] = Frontier(8, 0.0)
        self.metrics = Metrics()
        self.refuse = refuse
        self.window = ClaimWindow(store, self.frontier, self.metrics, size=256,
                                  max_pages=max_pages, finished_before=finished_before,
                                  intake=self.intake, held=lambda: 0, wall_clock=time.time)

    def intake(self, lease: LeasedRequest) -> Outcome | None:
        if self.refuse and lease.url.endswith(self.refuse):
            return Failure(lease.id, "robots", "refused at intake")
        key = CanonicalURL(lease.url)
        url = parsed(key)
        self.frontier.push(host_key(url), Job(lease, key, url, host_key(url)))
        return None

    async def take(self) -> Job | None:
        job = await asyncio.wait_for(self.window.next_job(), 5)
        assert job is None or isinstance(job, Job)
        return job

    async def finish(self, job: Job, outcome: Outcome | None = None) -> None:
        """As a worker does: the request ends, then its outcome is recorded."""
        self.frontier.release(job.host)
        await self.window.record(outcome or Completion(job.lease.id, 200))


def urls(n: int) -> list[NewRequest]:
    return [NewRequest(f"http://a.test/{i}") for i in range(n)]


async def test_it_hands_out_the_queue_in_order_then_drains(store: SQLiteStore) -> None:
    await store.add(urls(3))
    w = Window(store)
    seen = []
    while (job := await w.take()) is not None:
        seen.append(job.lease.url)
        await w.finish(job)
    assert seen == ["http://a.test/0", "http://a.test/1", "http://a.test/2"]
    assert w.window.state is WindowState.DRAINED
    await store.flush()
    assert (await store.counts()).done == 3


async def test_the_page_budget_stops_claiming(store: SQLiteStore) -> None:
    await store.add(urls(6))
    w = Window(store, max_pages=3, finished_before=1)  # an earlier run took one
    assert w.window.budget() == 2
    taken = []
    while (job := await w.take()) is not None:
        taken.append(job)
        await w.finish(job)
    assert len(taken) == 2 and w.window.budget() == 0
    await store.flush()
    counts = await store.counts()
    assert counts.done == 2 and counts.queued == 4 and counts.leased == 0


async def test_what_the_intake_ends_is_recorded_not_handed_out(store: SQLiteStore) -> None:
    await store.add(urls(3))
    w = Window(store, refuse="/1")
    seen = []
    while (job := await w.take()) is not None:
        seen.append(job.lease.url)
        await w.finish(job)
    assert seen == ["http://a.test/0", "http://a.test/2"]
    await store.flush()
    counts = await store.counts()
    assert counts.done == 2 and counts.failed == 1


async def test_a_retry_comes_back_when_it_is_due(store: SQLiteStore) -> None:
    await store.add(urls(1))
    w = Window(store)
    job = await w.take()
    assert job is not None
    started = time.monotonic()
    await w.finish(job, Retry(job.lease.id, time.time() + 0.2, "timeout: slow"))
    again = await w.take()  # nothing else to do: it sleeps until the retry is due
    assert again is not None and again.lease.id == job.lease.id
    assert again.lease.attempts == 1 and time.monotonic() - started >= 0.15
    await w.finish(again)
    assert await w.take() is None


async def test_close_wakes_a_waiting_worker(store: SQLiteStore) -> None:
    await store.add(urls(1))
    w = Window(store)
    job = await w.take()
    assert job is not None
    w.metrics.in_flight = 1  # a request in flight may add work: the next taker waits
    waiting = asyncio.create_task(w.window.next_job())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    w.window.close()
    assert await asyncio.wait_for(waiting, 1) is None
    assert w.window.state is WindowState.CLOSED
