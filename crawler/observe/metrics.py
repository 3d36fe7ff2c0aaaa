"""What a run has done so far, kept as plain counters the workers bump, and the `Snapshot`
that the live display, the progress log lines and the state file's stats are all made from.

No I/O here: the engine feeds in answers and errors; a snapshot adds the frontier's per-host
state, the connection pool's figures and the store's counts it is handed.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

RATE_WINDOW = 10  # seconds of history behind the "recent" pages/s
LATENCY_SAMPLES = 1024  # recent response times kept for the percentiles
HOST_SMOOTHING = 0.3  # weight of the newest response time in a host's moving average
TOP_HOSTS = 8
MAX_HOSTS = 20_000  # hosts whose figures are kept; past it, the least requested half goes
DRAIN_WINDOW = 30.0  # seconds of queue sizes an estimate of the end is made from


@dataclass(frozen=True, slots=True)
class PoolStats:
    """The shared connection pool. Live counts come from aiohttp's internals and are None
    when an aiohttp version no longer has them; the rest are counted from its trace signals."""

    in_use: int | None  # sockets lent to requests or being opened
    idle: int | None  # keep-alive sockets waiting to be reused
    waiting: int | None  # requests queued for a free connection slot
    created: int  # connections opened
    reused: int  # requests sent on a kept-alive connection
    dns_hits: int  # lookups answered by the pool's DNS cache
    dns_misses: int  # lookups that went to the resolver
    dns_seconds: float  # time spent in those resolver lookups
    process_sockets: int | None  # sockets the process has open, as the OS counts them


@dataclass(frozen=True, slots=True)
class Timings:
    """Response times (request sent to body read) in seconds."""

    count: int
    mean: float | None
    p50: float | None  # of the most recent LATENCY_SAMPLES
    p95: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class HostView:
    """One host as the frontier sees it now."""

    host: str
    in_flight: int
    queued: int
    delay: float  # seconds between request starts in force (rule, Crawl-delay or penalty)


@dataclass(frozen=True, slots=True)
class HostRow:
    host: str
    in_flight: int
    queued: int
    delay: float
    requests: int
    errors: int
    avg_seconds: float | None  # recent moving average of its response times


@dataclass(frozen=True, slots=True)
class CrawlTotals:
    """The whole crawl (every run), from the store's running counts."""

    done: int
    queued: int  # waiting: in the store's queue or this run's window, not in flight
    failed: int
    items: int
    skipped: int


@dataclass(frozen=True, slots=True)
class SharedTotals:
    """A crawl many processes share, all of them together, as last read from its store
    (every few seconds, not every frame): beside this process's own view of it."""

    processes: int  # running now, this one included
    done: int
    queued: int
    in_flight: int  # leased to any of them
    failed: int
    items: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    spider: str
    state: str
    started_at: float  # wall clock
    elapsed: float
    pages: int  # answers this run (any status, redirects included)
    rate: float  # pages/s since the run started
    recent_rate: float  # pages/s over the last RATE_WINDOW seconds
    eta: float | None  # seconds, when an end can be estimated
    items: int
    bytes: int
    in_flight: int
    failed: int
    retried: int
    crawl: CrawlTotals | None
    statuses: Mapping[int, int]  # every answer, robots.txt and retried ones included
    errors: Mapping[str, int]  # fetch errors by kind, robots.txt and retried ones included
    timings: Timings
    busiest: tuple[HostRow, ...]
    slowest: tuple[HostRow, ...]
    pool: PoolStats | None
    shared: SharedTotals | None = None  # on a store other processes share

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        return data


@dataclass(slots=True)
class HostStats:
    requests: int = 0
    errors: int = 0
    bytes: int = 0
    avg_seconds: float | None = None


@dataclass(slots=True)
class _Rate:
    """Pages per whole second over a sliding window (a few ints, whatever the crawl rate)."""

    buckets: deque[list[int]] = field(default_factory=lambda: deque(maxlen=RATE_WINDOW + 1))

    def add(self, now: float) -> None:
        second = int(now)
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += 1
        else:
            self.buckets.append([second, 1])

    def per_second(self, now: float, since: float) -> float:
        start = max(now - RATE_WINDOW, since)
        span = now - start
        if span <= 0:
            return 0.0
        # Whole seconds, the current one in part: the count is approximate by one bucket.
        total = sum(n for second, n in self.buckets if second + 1 > start)
        return total / max(span, 1.0)


class Metrics:
    """Counters of the current run (the store holds the crawl's totals)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.started = clock()
        self.started_at = wall_clock()
        self.pages = 0
        self.failed = 0
        self.retried = 0
        self.items = 0
        self.bytes = 0
        self.in_flight = 0
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.hosts: dict[str, HostStats] = {}
        self._rate = _Rate()
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._fetches = 0
        self._fetch_seconds = 0.0
        self._slowest = 0.0
        self._drain = _Drain()
        # A crawl other processes share: all of them together, as last read (not by us).
        self.shared: SharedTotals | None = None

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    # -- fed by the engine ----------------------------------------------------------------

    def answered(self, host: str, status: int, nbytes: int, seconds: float) -> None:
        """A server answered (any status); `seconds` from sending to the body's end."""
        self.statuses[status] += 1
        self.bytes += nbytes
        stats = self._host(host)
        stats.requests += 1
        stats.bytes += nbytes
        if status == 429 or status >= 500:
            stats.errors += 1
        self._timed(stats, seconds)

    def fetch_failed(self, host: str, kind: str, seconds: float) -> None:
        """No usable answer (timeout, connection refused, ...), whether retried or not."""
        self.errors[kind] += 1
        stats = self._host(host)
        stats.requests += 1
        stats.errors += 1
        # No answer, so no response time of the host's: one that never answered is not
        # "slow" (it is in the errors), and its refusals must not make it look fast either.
        self._timed(None, seconds)

    def page(self) -> None:
        """An answer that finished its request (not one that will be retried)."""
        self.pages += 1
        self._rate.add(self._clock())

    def _host(self, host: str) -> HostStats:
        stats = self.hosts.get(host)
        if stats is None:
            if len(self.hosts) >= MAX_HOSTS:
                self._forget_quiet_hosts()
            stats = self.hosts[host] = HostStats()
        return stats

    def _forget_quiet_hosts(self) -> None:
        """A crawl of millions of hosts must not keep figures for each: the tables show the
        busy and the slow ones, so the hosts with the fewest requests are dropped."""
        keep = sorted(self.hosts.items(), key=lambda hs: -hs[1].requests)[:MAX_HOSTS // 2]
        self.hosts = dict(keep)

    def _timed(self, stats: HostStats | None, seconds: float) -> None:
        self._fetches += 1
        self._fetch_seconds += seconds
        self._slowest = max(self._slowest, seconds)
        self._latencies.append(seconds)
        if stats is None:
            return
        previous = stats.avg_seconds
        stats.avg_seconds = seconds if previous is None else (
            previous + HOST_SMOOTHING * (seconds - previous))

    # -- read -------------------------------------------------------------------------------

    def recent_rate(self) -> float:
        return self._rate.per_second(self._clock(), self.started)

    def timings(self) -> Timings:
        if not self._fetches:
            return Timings(0, None, None, None, None)
        recent = sorted(self._latencies)
        return Timings(self._fetches, self._fetch_seconds / self._fetches,
                       _percentile(recent, 0.50), _percentile(recent, 0.95), self._slowest)

    def host_table(self, limit: int) -> list[dict[str, Any]]:
        """The most requested hosts' figures, for the stored stats."""
        top = sorted(self.hosts.items(), key=lambda hs: (-hs[1].requests, hs[0]))[:limit]
        return [{"host": host, **asdict(stats)} for host, stats in top]

    def snapshot(self, *, spider: str, state: str, crawl: CrawlTotals | None,
                 live_hosts: Iterable[HostView], pool: PoolStats | None,
                 page_budget: int | None = None) -> Snapshot:
        elapsed = self.elapsed
        recent = self.recent_rate()
        busiest, slowest = self._host_rows(list(live_hosts))
        return Snapshot(
            spider=spider, state=state, started_at=self.started_at, elapsed=elapsed,
            pages=self.pages, rate=self.pages / elapsed if elapsed > 0 else 0.0,
            recent_rate=recent,
            eta=(self._drain.eta(self._clock(), crawl, recent, page_budget)
                 if state == "running" else None),
            items=self.items,
            bytes=self.bytes, in_flight=self.in_flight, failed=self.failed,
            retried=self.retried, crawl=crawl, statuses=dict(self.statuses),
            errors=dict(self.errors), timings=self.timings(), busiest=busiest,
            slowest=slowest, pool=pool, shared=self.shared,
        )

    def _host_rows(self, live: list[HostView]) -> tuple[tuple[HostRow, ...],
                                                        tuple[HostRow, ...]]:
        views = {v.host: v for v in live}
        busy = sorted(live, key=lambda v: (-v.in_flight, -v.queued, v.host))[:TOP_HOSTS]
        timed = [(h, s) for h, s in self.hosts.items() if s.avg_seconds is not None]
        slow = sorted(timed, key=lambda hs: -(hs[1].avg_seconds or 0.0))[:TOP_HOSTS]
        return (tuple(self._row(v.host, v) for v in busy),
                tuple(self._row(host, views.get(host)) for host, _ in slow))

    def _row(self, host: str, view: HostView | None) -> HostRow:
        stats = self.hosts.get(host) or HostStats()
        return HostRow(host, view.in_flight if view else 0, view.queued if view else 0,
                       view.delay if view else 0.0, stats.requests, stats.errors,
                       stats.avg_seconds)


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(slots=True)
class _Drain:
    """How fast the queue shrinks, from the counts of recent snapshots."""

    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))

    def eta(self, now: float, crawl: CrawlTotals | None, rate: float,
            budget: int | None) -> float | None:
        """Seconds to the end, when one is in sight: the page limit's, or an empty queue's.
        A crawl that still finds more than it fetches has no end in sight: no estimate."""
        if crawl is None:
            return None
        while self.samples and now - self.samples[0][0] > DRAIN_WINDOW:
            self.samples.popleft()
        self.samples.append((now, crawl.queued))
        if budget is not None:
            left = max(0, budget - crawl.done - crawl.failed)
            return left / rate if rate > 0 else None
        then, queued_then = self.samples[0]
        if now - then < DRAIN_WINDOW / 3 or crawl.queued >= queued_then:
            return None
        return crawl.queued / ((queued_then - crawl.queued) / (now - then))
