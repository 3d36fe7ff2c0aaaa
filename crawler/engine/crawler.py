"""The scheduler: leases requests from the store into the frontier, runs N workers that fetch,
parse and call back, and hands every outcome back to the store in one piece.

Data flows one way: store -> frontier -> worker -> fetcher -> callback -> store. A request's
items, its discovered requests and its done mark reach the store as one `Completion`, so a
crash before the commit means a refetch, never a half-stored page.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import inspect
import itertools
import json
import logging
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from multidict import CIMultiDictProxy
from yarl import URL

from crawler.config import CrawlConfig
from crawler.engine.budget import ByteBudget
from crawler.engine.loopwatch import BLOCKING, LoopWatch
from crawler.errors import (
    RETRYABLE_STATUSES,
    ConnectError,
    CrawlError,
    FailureKind,
    FetchError,
    HTTPStatusError,
    OutOfScope,
    SpiderError,
    StateFileError,
    TooManyRedirects,
    describe,
    message,
)
from crawler.http.fetcher import Fetcher, FetchResult, WantBody
from crawler.model.items import encode_item
from crawler.model.request import Request
from crawler.model.response import Response, is_html_type
from crawler.model.spider import Spider
from crawler.observe import logs
from crawler.observe.metrics import CrawlTotals, HostView, Metrics, PoolStats, Snapshot
from crawler.policy import identity, robots
from crawler.policy.admission import Admission, Skip
from crawler.policy.frontier import Frontier
from crawler.urls import canon as urls
from crawler.urls.scope import Scope
from storage import (
    Completion,
    CrawlCounts,
    Defer,
    Failure,
    LeasedRequest,
    NewRequest,
    Outcome,
    Retry,
    RunInfo,
    Store,
    StoreError,
)

log = logging.getLogger("crawler")
status_log = logging.getLogger(logs.STATUS)

SEED_BATCH = 10_000
MAX_RETRY_AFTER = 3600.0
FLUSH_INTERVAL = 1.0
STATS_EVERY = 5  # flushes between two saves of the run's stats
STORED_HOSTS = 50  # hosts whose figures go into the stored stats (the most requested)
FEW_HOSTS = 8  # up to this many hosts in play, keep-alive is never given up
PARSE_IN_THREAD = 64 * 1024  # bytes of HTML above which parsing leaves the event loop
TREE_BUDGET = 8 * 1024 * 1024  # bytes of such HTML held as parsed trees at once (see budget)


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


@dataclass(slots=True)
class _Job:
    lease: LeasedRequest
    url: URL
    host: str


@dataclass(slots=True)
class _RobotsJob:
    """Fetch an origin's robots.txt; the origin's requests wait for it, outside the frontier."""

    origin: str
    url: URL
    host: str


class Crawler:
    """Runs one spider against one store: `result = await Crawler(spider, store, config).run()`.

    `stop()` (e.g. on Ctrl-C) stops taking work; requests in flight get `stop_grace` seconds
    to finish, the rest are released back to the queue; the store is left resumable.
    """

    def __init__(self, spider: Spider, store: Store, config: CrawlConfig | None = None, *,
                 fresh: bool = False, stop_grace: float = 5.0,
                 on_start: Callable[[RunInfo], None] | None = None,
                 retry_failed: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if not spider.name:
            raise SpiderError(f"{type(spider).__name__} has no name; set `name = \"...\"`")
        self.spider = spider
        self.config = config or CrawlConfig()
        self.metrics = Metrics(clock, wall_clock)
        self._watch = LoopWatch(clock)
        self._trees = ByteBudget(TREE_BUDGET)
        self._store = store
        self._fresh = fresh
        self._grace = stop_grace
        self._on_start = on_start
        self._retry_failed = retry_failed
        self._wall = wall_clock
        self._clock = clock
        self._frontier: Frontier[_Job | _RobotsJob] = Frontier(
            self.config.per_host, self.config.delay, clock)
        self._robots: robots.RobotsGate[_Job] = robots.RobotsGate(
            self.config.user_agent, self.config.max_retries + 1, clock)
        self._ruled: set[str] = set()  # hosts whose host_policies were looked up
        self._connect_failures: Counter[str] = Counter()  # in a row, by host
        self._down: dict[str, tuple[FailureKind, str]] = {}  # hosts given up, and why
        self._window = max(8 * self.config.workers, 256)
        self._state = RunState.CREATED
        self._admission = Admission(self.config, Scope(()), self._robots_forbids())
        self._seed_hosts: set[str] = set()
        self._fetcher: Fetcher | None = None
        self._changed = asyncio.Event()
        self._refilling = False
        self._recorded = 0  # outcomes recorded: a change the store may not have shown us yet
        self._exhausted_at = -1  # value of _recorded when a claim last came back short
        self._finished = 0  # requests this run took to done or failed (for --max-pages)
        self._finished_before = 0
        self._stop_requested = asyncio.Event()
        self._last_counts: CrawlCounts | None = None  # once the run is over
        self._final_pool: PoolStats | None = None  # the pool as the fetcher closed

    @property
    def state(self) -> RunState:
        return self._state

    def snapshot(self, *, process_sockets: bool = False) -> Snapshot:
        """Where the run stands now: what the live display and the stored stats show.
        `process_sockets` also asks the OS how many sockets the process holds."""
        counts = self._last_counts
        if counts is None and self._state is not RunState.ENDED:
            with contextlib.suppress(StoreError):  # before the crawl is opened
                counts = self._store.tally()
        fetcher = self._fetcher
        return self.metrics.snapshot(
            spider=self.spider.name, state=self._state.value,
            crawl=None if counts is None else _totals(counts, self.metrics.in_flight),
            live_hosts=(HostView(*row) for row in self._frontier.activity()),
            pool=(fetcher.pool(count_process_sockets=process_sockets) if fetcher
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
            self._wake()

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> CrawlResult:
        if self._state is not RunState.CREATED:
            raise CrawlError("a Crawler runs once; make a new one")
        seeds = await _start_requests(self.spider)  # a spider's error leaves the file alone
        starts = [URL(seed.url, encoded=True) for seed in seeds]
        self._admission = Admission(self.config, _scope(self.spider, starts),
                                    self._robots_forbids())
        self._seed_hosts = {url.host for url in starts if url.host}
        info = await _open_crawl(self._store, self.spider, self.config, seeds,
                                 fresh=self._fresh)
        if self._retry_failed:
            requeued = await self._store.requeue_failed()
            log.info("put %d failed request(s) back in the queue", requeued)
            info = dataclasses.replace(info, counts=await self._store.counts())
        self._finished_before = info.counts.finished
        if self._on_start is not None:
            self._on_start(info)
        ended = "error"
        try:
            await self._seed(seeds)
            if self._state is RunState.CREATED:
                self._state = RunState.RUNNING
            async with Fetcher(self.config) as fetcher:
                self._fetcher = fetcher
                try:
                    await self._allow_private_if_started_there(fetcher)
                    await self._run_workers()
                finally:
                    self._final_pool = fetcher.pool(count_process_sockets=True)
                    self._fetcher = None
            status, counts = await self._status()
            ended = status.value
            # finish_run changes one thing since those counts: our leases go back in the queue.
            self._last_counts = dataclasses.replace(
                counts, queued=counts.queued + counts.leased, leased=0)
        finally:
            self._state = RunState.ENDED
            await self._store.finish_run(ended, self._stats_json())
        return CrawlResult(status, info, self._last_counts, self.snapshot())

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

    async def _seed(self, seeds: list[NewRequest]) -> None:
        for start in range(0, len(seeds), SEED_BATCH):
            await self._store.add(seeds[start : start + SEED_BATCH])

    async def _allow_private_if_started_there(self, fetcher: Fetcher) -> None:
        """A crawl that starts on a private network may stay on it; one that starts on the
        public internet must never be steered into one (the fetcher checks every address
        it connects to)."""
        if fetcher.allow_private:
            return
        hosts = sorted(self._seed_hosts)
        for start in range(0, len(hosts), 64):  # a few lookups at a time, up to the first
            batch = hosts[start : start + 64]
            kinds = await asyncio.gather(*map(fetcher.private_kind, batch))
            found = next(((h, k) for h, k in zip(batch, kinds, strict=True) if k), None)
            if found is not None:
                log.info("start URL host %s is a %s address: private networks are allowed",
                         *found, extra={"host": found[0]})
                fetcher.allow_private = True
                return

    async def _run_workers(self) -> None:
        workers = [asyncio.create_task(self._worker(), name=f"worker-{i}")
                   for i in range(self.config.workers)]
        flusher = asyncio.create_task(self._flush_periodically(), name="flusher")
        stop_wait = asyncio.create_task(self._stop_requested.wait())
        watch = asyncio.create_task(self._watch.beat(), name="loop-watch")
        try:
            pending: set[asyncio.Task[Any]] = set(workers)
            while pending:
                done, pending = await asyncio.wait(
                    pending | {stop_wait, flusher}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {stop_wait}:
                    task.result()  # a worker or flusher that died (a bug, a full disk) stops all
                pending -= {stop_wait, flusher}
                if stop_wait in done:
                    await self._drain_workers(pending)
                    break
        finally:
            for task in [*workers, flusher, stop_wait, watch]:
                task.cancel()
            await asyncio.gather(*workers, flusher, stop_wait, watch, return_exceptions=True)

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
            if stats is None:
                await self._store.flush()
            else:
                await self._store.save_stats(stats)

    # -- handing out work -------------------------------------------------------------------

    async def _worker(self) -> None:
        while (job := await self._next_job()) is not None:
            self.metrics.in_flight += 1
            try:
                if isinstance(job, _RobotsJob):
                    outcomes = await self._process_robots(job)
                else:
                    outcomes = [await self._process(job)]
            finally:
                self.metrics.in_flight -= 1
            for outcome in outcomes:
                await self._record(outcome)
            self._wake()  # a robots.txt answer may have released held requests

    async def _next_job(self) -> _Job | _RobotsJob | None:
        while self._state is RunState.RUNNING:
            popped = self._frontier.pop()
            if popped is not None:
                return popped[1]
            if self._should_refill():
                await self._refill()
            elif not self._quiet():
                # Hosts are waiting out their delay, or requests in flight may add work.
                await self._wait(self._frontier.wait_time())
            else:
                budget = self._budget()
                due = None if budget == 0 else await self._store.next_due()
                if self._state is not RunState.RUNNING:
                    break  # stopped while we asked the store
                if due is None:
                    self._end()
                    return None
                # Only retries waiting for their time remain: sleep until the first is due.
                await self._wait(max(0.0, due - self._wall()))
                self._exhausted_at = -1
        return None

    def _end(self) -> None:
        if self._state is RunState.RUNNING:
            self._state = RunState.STOPPING
            self._wake()

    def _budget(self) -> int | None:
        if self.config.max_pages is None:
            return None
        # A job counts as in flight from pop() until its outcome is recorded.
        taken = (self._finished_before + self._finished + len(self._frontier)
                 + self._robots.held_count + self.metrics.in_flight)
        return max(0, self.config.max_pages - taken)

    def _should_refill(self) -> bool:
        if self._refilling or self._in_memory() >= self._window // 2:
            return False
        if self._exhausted_at == self._recorded:
            return False
        budget = self._budget()
        return budget is None or budget > 0

    async def _refill(self) -> None:
        self._refilling = True
        try:
            seen = self._recorded
            want = self._window - self._in_memory()
            budget = self._budget()
            if budget is not None:
                want = min(want, budget)
            leases = await self._store.claim(want, self._wall())
            skipped = [o for o in map(self._admit_lease, leases) if o is not None]
            if len(leases) < want:
                self._exhausted_at = seen
            self._frontier.prune()
        finally:
            self._refilling = False
            self._wake()
        for outcome in skipped:
            await self._record(outcome)

    def _in_memory(self) -> int:
        return len(self._frontier) + self._robots.held_count

    def _admit_lease(self, lease: LeasedRequest) -> Outcome | None:
        """Queue a leased request in the frontier, or hold it until its origin's robots.txt
        is known; a request robots.txt forbids ends here, counted, never fetched."""
        url = URL(lease.url, encoded=True)
        job = _Job(lease, url, urls.host_key(url))
        if job.host in self._down:
            return self._fail(lease, *self._down[job.host], None)
        if self.config.host_policies and job.host not in self._ruled:
            self._apply_host_policy(job)
        if not self.config.obey_robots:
            self._frontier.push(job.host, job)
            return None
        origin = robots.origin(url)
        verdict = self._robots.check(origin, lease.url)
        if verdict is None:
            if self._robots.hold(origin, job):
                self._frontier.push(job.host, _RobotsJob(origin, robots.robots_url(url), job.host))
            return None
        return self._obey(job, verdict)

    def _robots_forbids(self) -> Callable[[str, str], bool] | None:
        """A discovered URL that a known robots.txt disallows is not even queued."""
        return self._robots.forbids if self.config.obey_robots else None

    def _apply_host_policy(self, job: _Job) -> None:
        self._ruled.add(job.host)
        policy = self.config.policy_for(job.url.host or "")
        if policy is not None:
            self._frontier.set_rule(job.host, per_host=policy.per_host, delay=policy.delay)

    def _obey(self, job: _Job, verdict: robots.Verdict) -> Outcome | None:
        """Queue an allowed job; a disallowed one ends here, counted, never fetched."""
        if verdict is robots.Verdict.ALLOW:
            self._frontier.push(job.host, job)
            return None
        if verdict is robots.Verdict.FAIL:
            return self._fail(job.lease, *self._robots.failure(robots.origin(job.url)), None)
        return Completion(job.lease.id, None, counters={Skip.ROBOTS: 1})

    # -- robots.txt ---------------------------------------------------------------------------

    async def _process_robots(self, job: _RobotsJob) -> list[Outcome]:
        try:
            policy = await self._fetch_robots(job.url)
        finally:
            self._frontier.release(job.host)
        return self._resolve_robots(job, policy)

    async def _fetch_robots(self, url: URL) -> robots.Robots:
        """RFC 9309: follow up to five redirects (across hosts too); 4xx allows all; 5xx and
        network failures disallow all for now."""
        assert self._fetcher is not None
        for _ in range(robots.MAX_REDIRECTS + 1):
            try:
                result = await self._fetch(url)
            except FetchError as exc:
                # A failure that is the same every time (refused, TLS) is not asked again.
                return robots.unreachable(f"{message(exc)} (fetching {url})", self._clock(),
                                          final=not exc.retryable, kind=exc.kind)
            if result.location is None:
                return robots.from_response(result.status, result.body, self._clock())
            target = urls.join(result.url, result.location)
            if target is None:
                break
            if not self._admission.scope.allows_url(target):
                # Every request passes the crawl's scope, robots.txt's redirects too.
                log.info("robots.txt of %s redirects to %s, outside the crawl's scope: not "
                         "followed, so the file is unavailable (RFC 9309: all allowed)",
                         robots.origin(url), target, extra={"url": str(url)})
                break
            url = target
        # Unfollowable or too many redirects: the file is "unavailable", as a 4xx is.
        return robots.Robots(robots.RobotsState.ALLOW_ALL, self._clock())

    def _resolve_robots(self, job: _RobotsJob, policy: robots.Robots) -> list[Outcome]:
        done = self._robots.resolve(job.origin, policy)
        if done.retry:
            # Disallowed for now: the requests go back to the queue for a while (no attempt
            # used), and the next one claimed asks for robots.txt again.
            wait = self._backoff(done.tries - 1)
            log.info("%s: %s; trying again in %.0fs", job.origin, policy.why, wait,
                     extra={"host": job.host, "reason": policy.why})
            return [Defer(j.lease.id, self._wall() + wait, f"robots: {policy.why}")
                    for j in done.jobs]
        if done.policy.state is robots.RobotsState.UNREACHABLE:
            log.warning("%s: %s", job.origin, done.policy.why,
                        extra={"host": job.host, "reason": done.policy.why})
        delay = done.policy.crawl_delay(self.config.user_agent)
        if delay is not None:
            own = self._frontier.rule(job.host).delay
            self._frontier.set_delay(job.host, max(own, min(delay, self.config.max_crawl_delay)))
        outcomes = (self._obey(j, self._robots.verdict(done.policy, j.lease.url))
                    for j in done.jobs)
        return [o for o in outcomes if o is not None]

    def _quiet(self) -> bool:
        """Nothing queued here, nothing in flight, and the store has nothing due for us."""
        if self._in_memory() or self._frontier.in_flight or self.metrics.in_flight:
            return False
        if self._refilling:
            return False
        return self._exhausted_at == self._recorded or self._budget() == 0

    async def _wait(self, seconds: float | None) -> None:
        """Sleep until something changes (a release, a record, a refill) or `seconds` pass."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _record(self, outcome: Outcome) -> None:
        self._recorded += 1
        if not isinstance(outcome, Retry | Defer):  # those go back to the queue
            self._finished += 1
        # Shielded: a worker cancelled at the end of a stop must not cut a write in half.
        await asyncio.shield(self._store.record(outcome))
        self._wake()

    # -- one request --------------------------------------------------------------------------

    async def _process(self, job: _Job) -> Outcome:
        assert self._fetcher is not None
        lease = job.lease
        try:
            want = self._want_html if self._html_only(lease) else self._want_2xx
            # With many hosts, a host's last queued request closes its connection: no idle
            # socket is left behind for each of thousands of hosts (a later request
            # reconnects). With a few hosts (a site whose links come one at a time, say)
            # every connection is kept.
            keep_alive = (self._frontier.queued(job.host) > 0
                          or self._frontier.hosts <= FEW_HOSTS)
            result: FetchResult | FetchError = await self._fetch(job.url, want,
                                                                 keep_alive=keep_alive)
        except FetchError as exc:
            result = exc
        finally:
            self._frontier.release(job.host)
            self._wake()
        if isinstance(result, FetchError):
            return await self._on_fetch_error(job, result)
        self._connect_failures.pop(job.host, None)
        retry_after = None
        if result.status in RETRYABLE_STATUSES:
            # The server is overloaded: the whole host waits, not just this request.
            retry_after = _retry_after(result.headers.get("Retry-After"), self._wall())
            penalty = self._frontier.slow_down(job.host, retry_after)
            log.info("%s answered %d: slowing to one request per %.1fs", job.host,
                     result.status, max(penalty, retry_after or 0))
        else:
            self._frontier.recover(job.host)
        try:
            return await self._on_response(lease, result, retry_after)
        except Exception as exc:  # a bug of ours must cost one request, not the crawl
            log.exception("internal error on %s", lease.url, extra={"url": lease.url})
            return self._fail(lease, FailureKind.INTERNAL, message(exc), result.status)

    async def _fetch(self, url: URL, want: WantBody | None = None, *,
                     keep_alive: bool = True) -> FetchResult:
        """One fetch, counted in the metrics (robots.txt included) whatever its end. Its time
        leaves out any stretch the event loop was blocked (by a callback) meanwhile: the
        server's answer waited for us then, not we for it."""
        assert self._fetcher is not None
        host, started = urls.host_key(url), self._clock()
        try:
            if not self._admission.scope.allows_url(url):
                # Admission keeps such URLs out; this is the guard every request passes
                # (robots.txt, redirect hops, a state file written by an older version).
                raise OutOfScope(f"{url.host}:{url.port} is outside the crawl's hosts and "
                                 f"ports ({_ports(self._admission.scope.ports)})", url=str(url))
            result = await self._fetcher.fetch(url, want, keep_alive=keep_alive)
        except FetchError as exc:
            self.metrics.fetch_failed(host, exc.kind, self._took(started))
            raise
        self.metrics.answered(host, result.status, len(result.body), self._took(started))
        return result

    def _took(self, started: float) -> float:
        end = self._clock()
        return max(0.0, end - started - self._watch.blocked(started, end))

    async def _on_fetch_error(self, job: _Job, exc: FetchError) -> Outcome:
        if not isinstance(exc, ConnectError):
            return self._retry_or_fail(job.lease, exc, None, None)
        self._connect_failures[job.host] += 1
        if job.host not in self._down and \
                self._connect_failures[job.host] >= self.config.dead_after:
            await self._mark_down(job.host, exc)
        if job.host in self._down:
            return self._fail(job.lease, *self._down[job.host], None)
        return self._retry_or_fail(job.lease, exc, None, None)

    async def _mark_down(self, host: str, exc: FetchError) -> None:
        """Fail the host's queued requests now instead of letting each burn its retries."""
        reason = (f"{message(exc)} (host down after {self._connect_failures[host]} "
                  "connection failures in a row; --retry-failed queues it again)")
        self._down[host] = (exc.kind, reason)
        log.warning("%s is down: %s", host, describe(exc),
                    extra={"host": host, "reason": reason})
        for item in self._frontier.remove(host):
            jobs = self._robots.release(item.origin) if isinstance(item, _RobotsJob) else [item]
            for job in jobs:
                await self._record(self._fail(job.lease, exc.kind, reason, None))

    def _html_only(self, lease: LeasedRequest) -> bool:
        return self.spider.html_only and lease.callback is None

    @staticmethod
    def _want_2xx(status: int, headers: CIMultiDictProxy[str]) -> bool:
        return 200 <= status < 300

    @staticmethod
    def _want_html(status: int, headers: CIMultiDictProxy[str]) -> bool:
        declared = headers.get("Content-Type")
        return 200 <= status < 300 and (declared is None or is_html_type(declared))

    async def _on_response(self, lease: LeasedRequest, result: FetchResult,
                           retry_after: float | None) -> Outcome:
        status = result.status
        if result.location is not None:
            return self._redirect(lease, result, result.location)
        if status in RETRYABLE_STATUSES:
            return self._retry_or_fail(lease, HTTPStatusError(status, url=lease.url), status,
                                       retry_after)
        self.metrics.page()
        if not 200 <= status < 300:
            return Completion(lease.id, status)  # recorded with its status, not parsed
        policy = self._robots.policy(robots.origin(result.url))
        response = Response(result.url, status, result.headers, result.body, depth=lease.depth,
                            robots_sitemaps=policy.sitemaps if policy is not None else (),
                            max_links=self.config.max_links)
        if self._html_only(lease) and not response.is_html:
            return Completion(lease.id, status, counters={Skip.NON_HTML: 1})
        if response.is_html and len(response.body) > PARSE_IN_THREAD:
            # selectolax parses without the GIL: a big or pathological page (50,000 nested
            # divs take seconds) must not stall every other request meanwhile. Its tree
            # lives until the callback ends, and big trees share a memory budget.
            held = await self._trees.acquire(len(response.body))
            try:
                await asyncio.to_thread(getattr, response, "tree")
                return await self._call_back(lease, response)
            finally:
                self._trees.release(held)
        return await self._call_back(lease, response)

    def _redirect(self, lease: LeasedRequest, result: FetchResult, location: str) -> Outcome:
        if lease.redirects >= self.config.max_redirects:
            error = TooManyRedirects(
                f"more than {self.config.max_redirects} redirects (last to {location!r})"
            )
            return self._fail(lease, error.kind, message(error), result.status)
        self.metrics.page()
        target = urls.join(result.url, location)
        moved = Request.prepared(location, lease.callback, lease.cb_kwargs, lease.priority,
                                 key=None if target is None else str(target),
                                 credentials=urls.has_credentials(location))
        counters: Counter[str] = Counter()
        # Same depth, callback and priority: a redirect is the same request, moved.
        admitted = self._admission.admit([moved], lease.depth, lease.id, counters,
                                         redirects=lease.redirects + 1)
        return self._completion(lease, result.status, [], admitted, counters,
                                depth=lease.depth)

    async def _call_back(self, lease: LeasedRequest, response: Response) -> Outcome:
        name = lease.callback or "parse"
        method = getattr(self.spider, name, None)
        if method is None or not inspect.isasyncgenfunction(method):
            return self._fail(lease, FailureKind.SPIDER, f"{type(self.spider).__name__} has "
                              f"no async generator callback named {name!r}", response.status)
        kwargs = json.loads(lease.cb_kwargs) if lease.cb_kwargs else {}
        found: list[Request] = []
        cap, over = self.config.max_links, 0  # requests past the cap: counted, not kept
        items: list[str] = []
        clock = self._clock
        step = clock()  # when the callback was last resumed: a long step may block the loop
        try:
            async for value in method(response, **kwargs):
                now = clock()
                if now - step > BLOCKING:
                    self._watch.callback_step(name, lease.url, step, now)
                step = now
                if isinstance(value, Request):
                    if len(found) < cap:
                        found.append(value)
                    else:
                        over += 1
                elif value is not None:
                    items.append(encode_item(value))  # raises the SpiderError that explains
        except Exception as exc:
            where = _where(exc)
            log.error("callback %s failed on %s: %s%s", name, lease.url, describe(exc), where,
                      extra={"url": lease.url, "reason": f"callback: {describe(exc)}{where}"})
            return self._fail(lease, FailureKind.CALLBACK, f"{message(exc)}{where}",
                              response.status)
        self._watch.callback_step(name, lease.url, step, clock())
        counters: Counter[str] = Counter()
        if over or response.links_over:
            counters[Skip.LINK_LIMIT] += over + response.links_over
        admitted = self._admission.admit(found, lease.depth + 1, lease.id, counters)
        self.metrics.items += len(items)
        return self._completion(lease, response.status, items, admitted, counters,
                                depth=lease.depth + 1)

    def _completion(self, lease: LeasedRequest, status: int, items: list[str],
                    admitted: dict[str, NewRequest], counters: Counter[str], *,
                    depth: int) -> Completion:
        if self._admission.too_deep(depth):
            # Parked, not remembered: a shorter way to them found later still queues them.
            return Completion(lease.id, status, items, (), counters, list(admitted.values()))
        self._admission.remember(admitted)
        return Completion(lease.id, status, items, list(admitted.values()), counters)

    # -- failures -------------------------------------------------------------------------------

    def _retry_or_fail(self, lease: LeasedRequest, exc: FetchError, status: int | None,
                       retry_after: float | None) -> Outcome:
        if exc.retryable and lease.attempts < self.config.max_retries:
            self.metrics.retried += 1
            wait = max(self._backoff(lease.attempts), retry_after or 0.0)
            log.debug("retrying %s in %.1fs: %s", lease.url, wait, describe(exc))
            return Retry(lease.id, self._wall() + wait, describe(exc), status)
        if exc.retryable:
            text = f"{message(exc)} (gave up after {lease.attempts + 1} attempts)"
        else:
            text = message(exc)
        log.warning("failed %s: %s: %s", lease.url, exc.kind, text,
                    extra={"url": lease.url, "reason": f"{exc.kind}: {text}", "status": status})
        return self._fail(lease, exc.kind, text, status)

    def _backoff(self, attempt: int) -> float:
        """Jittered exponential backoff: spread out, so retries do not arrive together."""
        return float(self.config.retry_backoff * 2.0**attempt * random.uniform(0.5, 1.5))

    def _fail(self, lease: LeasedRequest, kind: FailureKind, error: str,
              status: int | None) -> Failure:
        self.metrics.failed += 1
        return Failure(lease.id, kind, error, status)


async def _start_requests(spider: Spider) -> list[NewRequest]:
    """The spider's start requests, read before the state file is opened: they are part of
    the crawl's identity, and they set its scope."""
    seeds: list[NewRequest] = []
    async for req in spider.start_requests():
        if not isinstance(req, Request):
            raise SpiderError(f"start_requests() yielded {req!r}; yield Request objects")
        try:
            url = req.absolute_url
        except ValueError as exc:
            raise SpiderError(f"bad start URL: {exc}") from None
        if req.credentials:
            log.warning("start URL %s named a user or password: the crawler never sends "
                        "credentials found in URLs", url, extra={"url": str(url)})
        seeds.append(NewRequest(str(url), req.callback, req.cb_kwargs_json, req.priority))
    return seeds


def _scope(spider: Spider, starts: list[URL]) -> Scope:
    """The start URLs' hosts (or the spider's allowed_hosts) on the start URLs' ports, 80,
    443 and the spider's allowed_ports."""
    started = Scope.of_urls(starts, subdomains=spider.allow_subdomains,
                            ports=spider.allowed_ports)
    if spider.allowed_hosts is None:
        return started
    return Scope(spider.allowed_hosts, subdomains=spider.allow_subdomains, ports=started.ports)


async def _open_crawl(store: Store, spider: Spider, config: CrawlConfig,
                      seeds: list[NewRequest], *, fresh: bool) -> RunInfo:
    """Open the crawl, unless the state file holds another one (`crawler.policy.identity`)."""
    current = identity.of(spider, config, (s.url for s in seeds))
    try:
        stored = await store.identity()
        if stored is not None and not fresh:
            _check_identity(store.location, identity.from_text(stored), current)
        info = await store.open_crawl(spider.name, config.to_json(), fresh=fresh,
                                      identity=identity.to_text(current),
                                      depth_limit=config.max_depth)
    except StoreError as exc:
        raise StateFileError(str(exc)) from exc
    if stored is None and info.resumed:
        status_log.warning("%s did not record which crawl it holds (an older version made "
                           "it); this command's spider, start URLs and settings are recorded "
                           "as its own", store.location)
    if not seeds and info.counts.queued == 0:
        status_log.warning("spider '%s' has no start requests: nothing to crawl (give it "
                           "start_urls, or start URLs on the command line)", spider.name)
    return info


def _check_identity(location: str, stored: dict[str, Any], current: dict[str, Any]) -> None:
    if stored.get("spider", current["spider"]) != current["spider"]:
        return  # the store refuses another spider's file in its own words
    comparison = identity.compare(stored, current)
    if comparison.refused:
        raise StateFileError(identity.refusal(location, comparison))
    if comparison.widenings:
        # max_depth raised: the links parked beyond the old one are queued by open_crawl.
        status_log.warning("widening the crawl in %s: %s", location,
                           "; ".join(comparison.widenings))


def _totals(counts: CrawlCounts, in_flight: int) -> CrawlTotals:
    skipped = sum(n for name, n in counts.counters.items() if name.startswith("skipped_"))
    # Leased requests wait in this run's window, or are in flight (shown on their own).
    waiting = max(0, counts.queued + counts.leased - in_flight)
    return CrawlTotals(counts.done, waiting, counts.failed, counts.items, skipped)


def _ports(ports: frozenset[int]) -> str:
    return "ports " + ", ".join(map(str, sorted(ports)))


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return min(max(0.0, when - now), MAX_RETRY_AFTER)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {last.filename}:{last.lineno} in {last.name})"
