"""What the SQLite and PostgreSQL stores share above their drivers: outcomes kept in a
`Ledger` and group-committed by the store's writer in its transactions, requests added and
failed ones queued again the same way, and reads handed to its reader. A store sets
`_ledger`, `_reader`, `_writer`, `_transactions`, `_readonly` and `_run_id`, and says how
it queues failed requests again (`_requeue_failed_rows`); the methods here are the same
whatever the database."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from storage.base import (
    Breakdown,
    CrawlCounts,
    FailedRequest,
    FeedMark,
    NewRequest,
    NotAStateFile,
    Outcome,
    RunRecord,
    Store,
    StoredCookie,
    StoreError,
)
from storage.census import HostStates, ProcessRecord
from storage.ledger import Ledger

T = TypeVar("T")


class Transacting(Protocol):
    async def run(self, work: Callable[[], Awaitable[T]]) -> T: ...
    async def drain(self) -> None: ...


class Applying(Protocol):
    async def apply_pending(self, run: int) -> None: ...
    async def insert_requests(self, requests: Sequence[NewRequest],
                              counters: Counter[str]) -> int: ...
    async def add_counters(self, counters: Counter[str]) -> None: ...


class Reading(Protocol):
    async def meta(self, key: str) -> str | None: ...
    async def counts(self) -> CrawlCounts: ...
    async def cookies(self) -> list[StoredCookie]: ...
    def items(self) -> AsyncGenerator[str, None]: ...
    async def items_after(self, position: int, limit: int) -> list[tuple[int, str]]: ...
    async def feed_marks(self) -> dict[str, FeedMark]: ...
    async def runs(self) -> list[RunRecord]: ...
    async def breakdown(self) -> Breakdown: ...
    async def failures(self, limit: int) -> list[FailedRequest]: ...
    async def processes(self) -> list[ProcessRecord]: ...
    async def host_states(self, top: int) -> HostStates | None: ...


class LedgeredStore(Store):
    _ledger: Ledger
    _reader: Reading
    _writer: Applying
    _transactions: Transacting
    _readonly: bool
    _run_id: int | None

    def tally(self) -> CrawlCounts:
        self._require_run()
        return self._ledger.tally.counts()

    # -- outcomes, group-committed ----------------------------------------------------------

    async def record(self, outcome: Outcome) -> None:
        self._require_run()
        if self._ledger.record(outcome):
            await self.flush()

    async def flush(self) -> None:
        if self._readonly:
            return
        if not self._ledger.pending:
            # A transaction under way (a claim's, another caller's flush) may hold outcomes
            # recorded before this call; one that fails gives them back to the ledger.
            await self._transactions.drain()
        if self._ledger.due:
            run = self._require_run()
            await self._transactions.run(lambda: self._writer.apply_pending(run))

    # -- the frontier, as both stores change it ----------------------------------------------

    async def add(self, requests: Sequence[NewRequest]) -> int:
        self._check_writable()

        async def insert() -> int:
            counters: Counter[str] = Counter()
            added = await self._writer.insert_requests(requests, counters)
            await self._writer.add_counters(counters)
            return added

        return await self._transactions.run(insert)

    async def requeue_failed(self) -> int:
        self._check_writable()

        async def requeue() -> int:
            requeued = await self._requeue_failed_rows()
            self._ledger.delta.move("failed", "queued", requeued)
            return requeued

        return await self._transactions.run(requeue)

    async def _requeue_failed_rows(self) -> int:
        """Queue every failed request again (attempts from 0), in the open transaction;
        returns how many. The store's own SQL."""
        raise NotImplementedError

    def keep_cookies(self, cookies: Sequence[StoredCookie]) -> None:
        self._require_run()
        self._ledger.cookies.whole(cookies)

    def change_cookies(self, kept: Sequence[StoredCookie],
                       gone: Sequence[tuple[str, str, str]]) -> None:
        self._require_run()
        self._ledger.cookies.change(kept, gone)

    def keep_feed_mark(self, mark: FeedMark) -> None:
        self._require_run()
        self._ledger.feeds[mark.name] = mark

    # -- reading --------------------------------------------------------------------------

    async def spider_name(self) -> str:
        value = await self._reader.meta("spider")
        if value is None:
            raise NotAStateFile(f"{self.location} holds no crawl yet")
        return value

    async def cookies(self) -> list[StoredCookie]:
        return await self._reader.cookies()

    async def counts(self) -> CrawlCounts:
        return await self._reader.counts()

    def items(self) -> AsyncGenerator[str, None]:
        return self._reader.items()

    async def items_after(self, position: int, limit: int) -> list[tuple[int, str]]:
        return await self._reader.items_after(position, limit)

    async def feed_marks(self) -> dict[str, FeedMark]:
        return await self._reader.feed_marks()

    async def runs(self) -> list[RunRecord]:
        return await self._reader.runs()

    async def breakdown(self) -> Breakdown:
        return await self._reader.breakdown()

    async def failures(self, limit: int) -> list[FailedRequest]:
        return await self._reader.failures(limit)

    async def processes(self) -> list[ProcessRecord]:
        return await self._reader.processes()

    async def host_states(self, top: int) -> HostStates | None:
        return await self._reader.host_states(top)

    # -- guards ---------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._readonly:
            raise StoreError(f"{self.location} was opened read-only")

    def _require_run(self) -> int:
        self._check_writable()
        if self._run_id is None:
            raise StoreError("no run is open: call open_crawl() first")
        return self._run_id
