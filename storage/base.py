"""The store interface: everything a crawl needs to persist, and nothing about crawling.

The crawler talks to storage only through `Store`. A store knows requests (rows that move
queued -> leased -> done | failed), items (opaque JSON text) and counters; it dedups requests by
the exact URL string it is given, so canonicalisation stays the crawler's business.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from storage.census import HostStates, ProcessRecord
from storage.sharable import Sharable

DUPLICATE_COUNTER = "skipped_duplicate"
"""The counter a store adds to for every discovered request that already had a row."""
PARKED_COUNTER = "skipped_depth"
"""The counter that holds how many requests are parked (see `RequestState.PARKED`); in a
file from before parking, it also counts the requests dropped for their depth then."""


class RequestState(enum.IntEnum):
    """Lifecycle of a request row. Stored as its integer value."""

    QUEUED = 0
    LEASED = 1
    DONE = 2
    FAILED = 3
    PARKED = 4
    """Kept for later, not queued: beyond the depth limit of the crawl so far. A later run
    with a deeper limit queues it (`open_crawl(depth_limit=...)`), and so does finding it
    again as a queued request."""


class StoreError(Exception):
    """Root of the storage layer's errors; the crawler maps them onto its own tree, once,
    where it meets the store. A `Refused` file was left untouched; any other error is a
    failure met while using the store (a full disk, an I/O error, a write it cannot take)."""


class Refused(StoreError):
    """The store will not take this state file as it is, and left it untouched: the root of
    refusals, as against failures met while using a file (a full disk, an I/O error)."""


class NotAStateFile(Refused):
    """The file exists but is not a crawl state file (or is damaged)."""


class SchemaMismatch(Refused):
    """The file is a crawl state file of a schema this version cannot read."""


class SpiderMismatch(Refused):
    """The state file belongs to another spider."""


class DatabaseUnavailable(Refused):
    """The database server can't be reached or refused us (down, a wrong port, password or
    database name). Nothing was changed."""


class StateLocked(Refused):
    """Another live process is running a crawl on this state file."""


class NewRequest(NamedTuple):
    """A request to admit. `cb_kwargs` is JSON text (or None for no arguments).

    A named tuple: a crawl makes fifty of these a page, and it builds in a third of a frozen
    dataclass's time. A plain GET leaves the last four fields as they are: the store
    dedups it by its URL. Another method or a body makes the dedup key the method, the
    URL and the body; `unique` (the crawler's dont_filter) a key of its own: random when
    True; when a str, made of it, the method, the URL and the body, so that adding the same
    request with the same str again adds nothing (a start request's place among them)."""

    url: str
    callback: str | None = None
    cb_kwargs: str | None = None
    priority: int = 0
    depth: int = 0
    redirects: int = 0
    parent: int | None = None
    method: str | None = None
    """The HTTP method, None for GET."""
    spec: str | None = None
    """Opaque text the crawler keeps with the request (its headers, cookies, ...)."""
    body: bytes | None = None
    unique: bool | str = False


class StoredCookie(NamedTuple):
    """One cookie of the crawl's session, as the store keeps it (opaque to the store)."""

    name: str
    value: str
    domain: str
    path: str
    expires: float | None
    secure: bool
    http_only: bool
    host_only: bool


@dataclass(frozen=True, slots=True)
class LeasedRequest:
    """A request this run holds a lease on."""

    id: int
    url: str
    callback: str | None
    cb_kwargs: str | None
    priority: int
    depth: int
    redirects: int
    attempts: int
    method: str | None = None
    spec: str | None = None
    body: bytes | None = None
    wait: float = 0.0
    """Seconds (on the store's clock, at the claim) before its host's politeness gate opens:
    set on the requests of a host this claim leased from a shared store (another process
    fetched from it last), 0 otherwise."""


@dataclass(frozen=True, slots=True)
class Completion:
    """The outcome of a fetched request, applied all-or-nothing.

    `items` are JSON texts. `counters` are added to the crawl's counters in the same
    transaction, so a counted outcome is counted exactly once.
    """

    request_id: int
    status: int | None
    items: Sequence[str] = ()
    requests: Sequence[NewRequest] = ()
    counters: Mapping[str, int] = field(default_factory=dict)
    parked: Sequence[NewRequest] = ()
    """New requests to keep parked (`RequestState.PARKED`) rather than queue."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Put a leased request back in the queue, not to be claimed before `not_before`."""

    request_id: int
    not_before: float
    error: str  # the attempt's error in words, its kind included: kept, never grouped
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Defer:
    """Put a leased request back, not before `not_before`, without using up an attempt
    (the request itself did not fail: e.g. its host's robots.txt is not reachable yet)."""

    request_id: int
    not_before: float
    reason: str


@dataclass(frozen=True, slots=True)
class Failure:
    """Mark a leased request failed for good, keeping the reason. What the crawler made of
    the failure (items, new requests, counters, as a `Completion` has) is stored with it,
    all or nothing."""

    request_id: int
    kind: str  # one word saying what failed ("timeout", "callback", ...): grouped by stats
    error: str  # the details
    status: int | None = None
    items: Sequence[str] = ()
    requests: Sequence[NewRequest] = ()
    counters: Mapping[str, int] = field(default_factory=dict)
    parked: Sequence[NewRequest] = ()


Outcome = Completion | Retry | Defer | Failure


@dataclass(frozen=True, slots=True)
class FeedMark:
    """How far a feed (a file the items are written to as they are committed) has got, kept
    in the store's commits so that a resumed crawl knows what the file holds. The store
    keeps it as given: only `item` means something to it (an item position, see
    `items_after`)."""

    name: str
    """The feed's key (e.g. the file's absolute path)."""
    format: str
    item: int
    """The position of the last item written (0: none yet)."""
    length: int
    """Bytes written (the file's content that later writes keep)."""
    checksum: int
    """A checksum of those bytes (the writer's choice)."""
    extra: str = ""
    """Whatever else the writer needs to go on (e.g. a CSV file's columns)."""


@dataclass(frozen=True, slots=True)
class CrawlCounts:
    queued: int
    leased: int
    done: int
    failed: int
    items: int
    counters: Mapping[str, int]
    parked: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @classmethod
    def of(cls, by_state: Mapping[int, int], items: int | None,
           counters: Mapping[str, int]) -> CrawlCounts:
        """From the requests counted by state (a `GROUP BY state`), the items and counters."""
        q, leased, done, failed, parked = (int(by_state.get(s, 0)) for s in RequestState)
        return cls(q, leased, done, failed, int(items or 0), counters, parked)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What opening a crawl found: who we are and where the crawl stood."""

    run_id: int
    resumed: bool
    reclaimed: int
    counts: CrawlCounts


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    started: float
    ended: float | None
    status: str
    config: str
    stats: str | None = None
    """The run's statistics as JSON text, saved periodically while it runs and at its end."""


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The crawl's finished requests grouped: done ones by HTTP status, failed ones by the
    kind of their failure (`Failure.kind`)."""

    statuses: Mapping[int, int]
    errors: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class FailedRequest:
    url: str
    status: int | None
    kind: str | None  # `Failure.kind`
    error: str | None  # `Failure.error`: the details


class Store(Sharable, ABC):
    """A crawl's durable state. One instance per process; many processes may share a crawl
    only where the implementation says so (the SQLite store allows one writer at a time)."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the crawl is kept, as messages name it (for SQLite: the file, quoted)."""

    @abstractmethod
    async def open_crawl(self, spider: str, config: str, *, fresh: bool,
                         identity: str | None = None,
                         depth_limit: int | None = None) -> RunInfo:
        """Create or resume the crawl of `spider`, start a run and reclaim leases of runs that
        are gone. `config` is JSON text recorded with the run. `identity` (text), when given,
        replaces the one `identity()` returns. Parked requests of depth up to `depth_limit`
        (all, when None) are queued, in the same transaction."""

    @abstractmethod
    async def identity(self) -> str | None:
        """The identity text the crawl was last opened with, None if it has none."""

    @abstractmethod
    async def add(self, requests: Sequence[NewRequest]) -> int:
        """Admit requests that have no row yet; returns how many were new. Idempotent."""

    @abstractmethod
    async def requeue_failed(self) -> int:
        """Put every failed request back in the queue with fresh attempts; returns how many."""

    @abstractmethod
    async def claim(self, limit: int, now: float) -> list[LeasedRequest]:
        """Lease up to `limit` queued requests due at `now` (wall-clock seconds), highest
        priority first, then in admission order (breadth-first)."""

    @abstractmethod
    async def next_due(self) -> float | None:
        """The earliest `not_before` among queued requests, or None if none is queued."""

    @abstractmethod
    async def record(self, outcome: Outcome) -> None:
        """Record the outcome of a leased request. May be buffered: it is durable after the
        next `flush()` (each outcome stays all-or-nothing)."""

    @abstractmethod
    async def flush(self) -> None:
        """Make every recorded outcome durable."""

    @abstractmethod
    def keep_cookies(self, cookies: Sequence[StoredCookie]) -> None:
        """The crawl's cookies as they are now, replacing those kept. No I/O: written by the
        next commit, with (or before) the outcomes recorded after this call, so the file
        never holds an outcome without the cookies its response set."""

    @abstractmethod
    def change_cookies(self, kept: Sequence[StoredCookie],
                       gone: Sequence[tuple[str, str, str]]) -> None:
        """Some of the crawl's cookies changed: each of `kept` replaces the one kept with its
        domain, name and path (trailing slashes aside), each (domain, path, name) of `gone`
        is dropped, likewise. No I/O: written as `keep_cookies`'s are, in the same order."""

    @abstractmethod
    async def cookies(self) -> list[StoredCookie]:
        """The cookies last kept (and committed)."""

    @abstractmethod
    async def counts(self) -> CrawlCounts:
        """Row counts by state, items and counters."""

    @abstractmethod
    def tally(self) -> CrawlCounts:
        """This run's view of the counts, without I/O: cheap enough to ask every second. It
        leaves out outcomes not yet flushed and the writes of other processes."""

    @abstractmethod
    async def save_stats(self, stats: str) -> None:
        """Store this run's statistics (JSON text), replacing the previous ones; flushes."""

    @abstractmethod
    async def finish_run(self, status: str, stats: str | None = None) -> None:
        """Flush, record how this run ended (and its final statistics) and give back any
        lease it still holds."""

    @abstractmethod
    async def breakdown(self) -> Breakdown:
        """Finished requests by HTTP status and by kind of error (scans the whole crawl)."""

    @abstractmethod
    def items(self) -> AsyncGenerator[str, None]:
        """Every stored item's JSON text, in the order they were stored."""

    @abstractmethod
    async def items_after(self, position: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` committed items after `position` (0: from the first), in the order
        they were committed, each with its position: an integer that grows with each item
        committed, never reused while the crawl lasts (a fresh start begins again)."""

    @abstractmethod
    async def feed_marks(self) -> dict[str, FeedMark]:
        """The committed mark of every feed, by name (none in a fresh crawl)."""

    @abstractmethod
    def keep_feed_mark(self, mark: FeedMark) -> None:
        """Replace the mark of the feed `mark.name`. No I/O: written by the next commit (a
        `flush()` makes one), after the outcomes recorded before this call."""

    @abstractmethod
    async def runs(self) -> list[RunRecord]:
        """Every run of this crawl, oldest first."""

    @abstractmethod
    async def failures(self, limit: int) -> list[FailedRequest]:
        """Up to `limit` failed requests with their errors, most recent first."""

    @abstractmethod
    async def processes(self) -> list[ProcessRecord]:
        """Every process (run) that has run on this crawl, oldest first."""

    @abstractmethod
    async def host_states(self, top: int) -> HostStates | None:
        """The hosts by state and the `top` with the most work left; None for a store
        that keeps no per-host state (one process at a time)."""

    @abstractmethod
    async def live(self) -> bool:
        """Whether a live process is running a crawl on this store now (this one included).
        A run marked running whose process is gone (killed) is not."""

    @abstractmethod
    async def spider_name(self) -> str:
        """The name of the spider that owns this crawl."""

    @abstractmethod
    async def close(self) -> None:
        """Flush and release everything. Safe to call twice."""
