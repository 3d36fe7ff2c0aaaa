"""The run: its lifecycle, and the wiring of the parts that do the work.

Data flows one way: store -> claim window -> frontier -> worker -> transport -> page
processor (callback, admission) -> claim window -> store. A request's items, its discovered
requests and its done mark reach the store as one `Completion`, so a crash before the commit
means a refetch, never a half-stored page.

The parts: `ClaimWindow` (window.py) leases requests and records outcomes; `Intake` (intake.py)
queues a leased request in the frontier; `RobotsCoordinator` (robotstxt.py) holds requests
until their robots.txt is known and fetches it; `PageProcessor` (pages.py) turns one fetch
into one outcome. The decisions they act on are pure code in `crawler.policy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crawler.config import CrawlConfig, layered
from crawler.engine.callbacks import Callbacks
from crawler.engine.cookies import CookieKeeper
from crawler.engine.errbacks import Errbacks
from crawler.engine.fetch import MeteredFetch
from crawler.engine.hostshare import HostShare
from crawler.engine.intake import Intake
from crawler.engine.items import ItemPath
from crawler.engine.jobs import Job, RobotsJob, Work
from crawler.engine.loopwatch import LoopWatch
from crawler.engine.opening import (
    allow_private_if_started_there,
    crawl_scope,
    open_crawl,
    start_requests,
)
from crawler.engine.outcomes import Outcomes
from crawler.engine.pages import PageProcessor
from crawler.engine.robotstxt import RobotsCoordinator
from crawler.engine.shared import SharedView
from crawler.engine.state import StateStore
from crawler.engine.window import ClaimWindow, WindowState
from crawler.errors import CrawlError, SpiderError, StateWriteError
from crawler.feeds import Feeds
from crawler.http.fetcher import Fetcher
from crawler.http.transport import Transport
from crawler.model.specs import check_statuses
from crawler.model.spider import Spider
from crawler.observe.metrics import CrawlTotals, HostView, Metrics, PoolStats, Snapshot
from crawler.observe.sendlog import SendLog
from crawler.policy.admission import Admission
from crawler.policy.frontier import Frontier
from crawler.policy.retry import HostHealth, RetryPolicy
from crawler.policy.robots import RobotsGate
from crawler.urls.scope import Scope
from storage import CrawlCounts, NewRequest, RunInfo, Store

log = logging.getLogger("crawler")

SEED_BATCH = 10_000
FLUSH_INTERVAL = 1.0
STATS_EVERY = 5  # flushes between two saves of the run's stats
STORED_HOSTS = 50  # hosts whose figures go into the stored stats (the most requested)


class RunState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    ENDED = "ended"


class CrawlStatus(enum.StrEnum):
    """How a run ended."""

    FINISHED = "finished"  # nothing left to fetch
    PAGE_LIMIT = "page_limit"  # --max-pages reached; more is queued
    INTERRUPTED = "interrupted"  # stopped by the user; resumable


@dataclass(frozen=True, slots=True)
class CrawlResult:
    status: CrawlStatus
    run: RunInfo
    counts: CrawlCounts
    stats: Snapshot  # the run's last snapshot, as stored in the state file


@dataclass(frozen=True, slots=True)
class _Parts:
    """What the workers use, wired once the scope is known and the transport open."""

    window: ClaimWindow
    robots: RobotsCoordinator
    pages: PageProcessor
    share: HostShare | None  # the host leases of a crawl shared with other processes
    figures: SharedView | None  # what all the processes of a shared crawl did together


class Crawler:
    """Runs one spider against one store: `result = await Crawler(spider, store, config).run()`.
    Without a config, the spider's own settings apply over the defaults (`layered(spider)`).

    `stop()` (e.g. on Ctrl-C) stops taking work; requests in flight get `stop_grace` seconds
    to finish, the rest are released back to the queue; the store is left resumable.
    `transport` fetches (by default the aiohttp `Fetcher`, built from the config); `rng`
    spreads retries out (by default the `random` module).
    """

    def __init__(self, spider: Spider, store: Store, config: CrawlConfig | None = None, *,
                 transport: Transport | None = None, fresh: bool = False,
                 stop_grace: float = 5.0, on_start: Callable[[RunInfo], None] | None = None,
                 retry_failed: bool = False, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        if not spider.name:
            raise SpiderError(f"{type(spider).__name__} has no name; set `name = \"...\"`")
        self.spider = spider
        self._handled = check_statuses(spider.handle_statuses)
        # Without a config, the spider's own settings (delay = 1.0) over the defaults.
        self.config = cfg = config or layered(spider)
        self._items = ItemPath(spider)  # its pipelines and converters, checked now
        self.metrics = Metrics(clock, wall_clock)
        self._store = StateStore.of(store)  # storage's errors become the crawler's
        self._feeds = Feeds(self._store, cfg)  # an output that cannot be written: refused now
        self._transport = transport if transport is not None else Fetcher(cfg)
        self._fresh, self._grace, self._on_start = fresh, stop_grace, on_start
        self._retry_failed = retry_failed
        self._clock = clock
        self._wall = wall_clock
        self._watch = LoopWatch(clock)
        self._frontier: Frontier[Work] = Frontier(cfg.per_host, cfg.delay, clock,
                                                      from_send=True)
        self._gate: RobotsGate[Job] = RobotsGate(cfg.user_agent, cfg.max_retries + 1, clock)
        self._health = HostHealth(cfg.dead_after)
        self._retry = RetryPolicy(cfg.max_retries, cfg.retry_backoff,
                                  random.uniform if rng is None else rng.uniform)
        self._state = RunState.CREATED
        self._stop_requested = asyncio.Event()
        self._parts: _Parts | None = None
        self._open_transport: Transport | None = None  # while the run fetches
        self._last_counts: CrawlCounts | None = None  # once the run is over
        self._final_pool: PoolStats | None = None  # the pool as the transport closed

    @property
    def state(self) -> RunState:
        return self._state

    def snapshot(self, *, process_sockets: bool = False) -> Snapshot:
        """Where the run stands now: what the live display and the stored stats show.
        `process_sockets` also asks the OS how many sockets the process holds."""
        counts = self._last_counts
        if counts is None and self._state is not RunState.ENDED:
            with contextlib.suppress(StateWriteError):  # before the crawl is opened
                counts = self._store.tally()
        transport = self._open_transport
        return self.metrics.snapshot(
            spider=self.spider.name, state=self._state.value,
            crawl=None if counts is None else _totals(counts, self.metrics.in_flight),
            live_hosts=(HostView(*row) for row in self._frontier.activity()),
            pool=(transport.pool(count_process_sockets=process_sockets) if transport
                  else self._final_pool),
            page_budget=self.config.max_pages,
        )

    def _stats_json(self) -> str | None:
        try:
            data = self.snapshot(process_sockets=True).to_dict()
            data["hosts"] = self.metrics.host_table(STORED_HOSTS)
            data["saved_at"] = self._wall()
            return json.dumps(data)
        except Exception:  # never let the figures cost the crawl (or hide its real error)
            log.exception("could not gather the run's statistics")
            return None

    def stop(self) -> None:
        """Stop gracefully. Safe to call from a signal handler via loop.call_soon_threadsafe."""
        if self._state in (RunState.CREATED, RunState.RUNNING):
            self._state = RunState.STOPPING
            self._stop_requested.set()
            if self._parts is not None:
                self._parts.window.close()

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> CrawlResult:
        if self._state is not RunState.CREATED:
            raise CrawlError("a Crawler runs once; make a new one")
        await self._items.open()  # the spider's pipelines: closed however the run ends
        try:
            result = await self._run()
        except BaseException:
            await self._items.close(quiet=True)  # the run's own error is the one to see
            raise
        await self._items.close()
        return result

    async def _run(self) -> CrawlResult:
        seeds = await start_requests(self.spider)  # a spider's error leaves the file alone
        starts = seeds.parsed()
        scope = crawl_scope(self.spider, starts)
        self._transport.auth_for(starts)  # basic auth goes where the starts reach
        info = await open_crawl(self._store, self.spider, self.config, seeds.keys,
                                fresh=self._fresh)
        if self._retry_failed:
            requeued = await self._store.requeue_failed()
            log.info("put %d failed request(s) back in the queue", requeued)
            info = dataclasses.replace(info, counts=await self._store.counts())
        if self._on_start is not None:
            self._on_start(info)
        ended = "error"
        try:
            await self._feeds.open()
            await _seed(self._store, seeds.requests)
            if self._state is RunState.CREATED:
                self._state = RunState.RUNNING
            async with self._transport as transport:
                self._open_transport = transport
                try:
                    await allow_private_if_started_there(transport, starts)
                    cookies = CookieKeeper(transport, self._store)
                    await cookies.restore()
                    with SendLog.kept(self.config.send_log, self._frontier):
                        await self._run_workers(self._wire(transport, scope,
                                                           info.counts.finished, cookies))
                finally:
                    self._final_pool = transport.pool(count_process_sockets=True)
                    self._open_transport = None
            status, counts = await self._status()
            await self._feeds.finish()  # every item committed, before the run is over
            ended = status.value
            # finish_run changes one thing since those counts: our leases go back in the queue.
            self._last_counts = dataclasses.replace(
                counts, queued=counts.queued + counts.leased, leased=0)
        finally:
            self._state = RunState.ENDED
            self._feeds.close()
            await self._store.finish_run(ended, self._stats_json())
        return CrawlResult(status, info, self._last_counts, self.snapshot())

    def _wire(self, transport: Transport, scope: Scope, finished_before: int,
              cookies: CookieKeeper) -> _Parts:
        cfg, gate = self.config, self._gate
        outcomes = Outcomes(self.metrics, self._retry, self._wall)
        fetch = MeteredFetch(transport, scope, self.metrics, self._watch, self._clock,
                             cookies=cookies)
        robots = RobotsCoordinator(gate, self._frontier, fetch, outcomes=outcomes,
                                   retry=self._retry, config=cfg, scope=scope,
                                   clock=self._clock, wall_clock=self._wall)
        intake = Intake(cfg, self._frontier, self._health,
                        robots if cfg.obey_robots else None, outcomes)
        window = ClaimWindow(self._store, self._frontier, self.metrics,
                             size=max(8 * cfg.workers, 256), max_pages=cfg.max_pages,
                             finished_before=finished_before, intake=intake.admit,
                             held=lambda: gate.held_count, wall_clock=self._wall)
        robots.wake = window.wake
        # A discovered URL that a known robots.txt disallows is not even queued.
        admission = Admission(cfg, scope, gate.forbids if cfg.obey_robots else None)
        callbacks = Callbacks(self.spider, outcomes, self._watch, max_links=cfg.max_links,
                              clock=self._clock, items=self._items)
        pages = PageProcessor(cfg, fetch, window, frontier=self._frontier, health=self._health,
                              robots=robots, admission=admission, callbacks=callbacks,
                              outcomes=outcomes, html_only=self.spider.html_only,
                              metrics=self.metrics, wall_clock=self._wall,
                              handle_statuses=self._handled)
        window.settle = Errbacks(self.spider, outcomes, admission, self.metrics,
                                 max_links=cfg.max_links, items=self._items).settle
        share = HostShare.of(self._store, self._frontier, cfg, window.look_again, self._clock)
        if share is not None:
            share.forget = robots.forget
        self._parts = _Parts(window, robots, pages, share, SharedView.of(self._store, self.metrics))
        if self._state is not RunState.RUNNING:  # stopped before it started
            window.close()
        return self._parts

    async def _status(self) -> tuple[CrawlStatus, CrawlCounts]:
        await self._store.flush()
        counts = await self._store.counts()
        # Every lease left is this run's own and goes back to the queue at finish_run.
        if counts.queued + counts.leased == 0:
            status = CrawlStatus.FINISHED
        elif self._stop_requested.is_set():
            status = CrawlStatus.INTERRUPTED
        else:
            status = CrawlStatus.PAGE_LIMIT
        return status, counts

    async def _run_workers(self, parts: _Parts) -> None:
        workers = [asyncio.create_task(self._worker(parts), name=f"worker-{i}")
                   for i in range(self.config.workers)]
        helpers = {asyncio.create_task(self._flush_periodically(), name="flusher"),
                   *(asyncio.create_task(k.keep()) for k in (parts.share, parts.figures) if k)}
        stop_wait = asyncio.create_task(self._stop_requested.wait())
        watch = asyncio.create_task(self._watch.beat(), name="loop-watch")
        try:
            pending: set[asyncio.Task[Any]] = set(workers)
            while pending:
                done, pending = await asyncio.wait(
                    pending | helpers | {stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {stop_wait}:
                    task.result()  # a worker or helper that died (a bug, a full disk) stops all
                pending -= helpers | {stop_wait}
                if stop_wait in done:
                    await self._drain_workers(pending)
                    break
        finally:
            for task in [*workers, *helpers, stop_wait, watch]:
                task.cancel()
            await asyncio.gather(*workers, *helpers, stop_wait, watch, return_exceptions=True)

    async def _drain_workers(self, workers: set[asyncio.Task[Any]]) -> None:
        """Give requests in flight a moment to finish; the rest are released at finish_run."""
        if not workers:
            return
        log.info("stopping: waiting up to %.0fs for %d request(s) in flight",
                 self._grace, self.metrics.in_flight)
        done, _ = await asyncio.wait(workers, timeout=self._grace)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _flush_periodically(self) -> None:
        # Bounds how much finished work a kill -9 can cost (it is refetched, never lost),
        # and keeps the stored stats of a running crawl fresh for `crawl stats`.
        for beat in itertools.count(1):
            await asyncio.sleep(FLUSH_INTERVAL)
            # The first second's stats too: `crawl stats` has figures almost at once.
            stats = self._stats_json() if beat % STATS_EVERY == 1 else None
            await (self._store.flush() if stats is None else self._store.save_stats(stats))
            await self._feeds.catch_up()  # their marks go with the next commit

    async def _worker(self, parts: _Parts) -> None:
        window = parts.window
        while (job := await window.next_job()) is not None:
            self.metrics.in_flight += 1
            try:
                if isinstance(job, RobotsJob):
                    outcomes = await parts.robots.process(job)
                else:
                    outcomes = [await parts.pages.process(job)]
            finally:
                self.metrics.in_flight -= 1
            for outcome in outcomes:
                await window.record(outcome)
            window.wake()  # a robots.txt answer may have released held requests
        if window.state is WindowState.DRAINED and self._state is RunState.RUNNING:
            self._state = RunState.STOPPING  # nothing is left to fetch


async def _seed(store: Store, seeds: list[NewRequest]) -> None:
    for start in range(0, len(seeds), SEED_BATCH):
        await store.add(seeds[start : start + SEED_BATCH])


def _totals(counts: CrawlCounts, in_flight: int) -> CrawlTotals:
    skipped = sum(n for name, n in counts.counters.items() if name.startswith("skipped_"))
    # Leased requests wait in this run's window, or are in flight (shown on their own).
    waiting = max(0, counts.queued + counts.leased - in_flight)
    return CrawlTotals(counts.done, waiting, counts.failed, counts.items, skipped)
