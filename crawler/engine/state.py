"""The store as the crawler sees it: storage's errors become the crawler's, here and once.

`storage` knows nothing of the crawler, so its errors have a root of their own
(`storage.StoreError`). Above this module there are only `CrawlError`s:
- a refusal (`storage.Refused`: not a state file, another schema or spider, in use, out of
  reach), and whatever goes wrong opening a store or a crawl, is a `StateFileError`: the
  file was left untouched (the command line's exit 2);
- a failure while crawling (a full disk, an I/O error) is a `StateWriteError`: the crawl
  stops and the file can be resumed (exit 1).

Each method wraps one call in a `try`, which costs nothing while nothing is raised: the
per-page `record()` stays as cheap as the store's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence

from crawler.errors import CrawlError, StateFileError, StateWriteError
from storage import (
    Breakdown,
    CrawlCounts,
    FailedRequest,
    FeedMark,
    Gaps,
    HostStates,
    LeasedRequest,
    NewRequest,
    Outcome,
    ProcessRecord,
    Refused,
    RunInfo,
    RunRecord,
    Store,
    StoredCookie,
    StoreError,
    name_crawl,
    open_store,
)


async def open_state(location: str, *, readonly: bool = False,
                     crawl: str | None = None) -> StateStore:
    """Open the store a `--state` location names; a refusal is a `StateFileError`. `crawl`
    names the crawl in a PostgreSQL database whose URL names none (see `name_crawl`)."""
    if crawl is not None:
        location = name_crawl(location, crawl)
    try:
        return StateStore(await open_store(location, readonly=readonly))
    except StoreError as exc:
        raise StateFileError(str(exc)) from exc


def _failed(exc: StoreError) -> CrawlError:
    if isinstance(exc, Refused):
        return StateFileError(str(exc))
    return StateWriteError(str(exc))


class StateStore(Store):
    """A `Store` whose every error is a `CrawlError`. Wraps any store once (`of`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @classmethod
    def of(cls, store: Store) -> StateStore:
        return store if isinstance(store, StateStore) else cls(store)

    @property
    def location(self) -> str:
        return self._store.location

    # -- opening a crawl: any failure refuses the file --------------------------------------

    async def open_crawl(self, spider: str, config: str, *, fresh: bool,
                         identity: str | None = None,
                         depth_limit: int | None = None) -> RunInfo:
        try:
            return await self._store.open_crawl(spider, config, fresh=fresh, identity=identity,
                                                depth_limit=depth_limit)
        except StoreError as exc:
            raise StateFileError(str(exc)) from exc

    async def identity(self) -> str | None:
        try:
            return await self._store.identity()
        except StoreError as exc:
            raise StateFileError(str(exc)) from exc

    # -- crawling ---------------------------------------------------------------------------

    async def add(self, requests: Sequence[NewRequest]) -> int:
        try:
            return await self._store.add(requests)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def requeue_failed(self) -> int:
        try:
            return await self._store.requeue_failed()
        except StoreError as exc:
            raise _failed(exc) from exc

    async def claim(self, limit: int, now: float) -> list[LeasedRequest]:
        try:
            return await self._store.claim(limit, now)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def next_due(self) -> float | None:
        try:
            return await self._store.next_due()
        except StoreError as exc:
            raise _failed(exc) from exc

    # -- a crawl shared with other processes (hostshare.py) -------------------------------

    @property
    def shared(self) -> bool:
        return self._store.shared

    @property
    def lease(self) -> float:
        return self._store.lease

    def watch(self, lost: Callable[[set[str]], None]) -> None:
        self._store.watch(lost)

    def abandon(self) -> None:
        self._store.abandon()

    def plan(self, hosts: int, delay: float = 0.0) -> None:
        self._store.plan(hosts, delay)

    async def renew(self) -> set[str]:
        try:
            return await self._store.renew()
        except StoreError as exc:
            raise _failed(exc) from exc

    async def hand_back(self, gaps: Gaps, *,
                        delays: Mapping[str, float] | None = None,
                        everything: bool = False) -> None:
        try:
            await self._store.hand_back(gaps, delays=delays, everything=everything)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def record(self, outcome: Outcome) -> None:
        try:
            await self._store.record(outcome)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def flush(self) -> None:
        try:
            await self._store.flush()
        except StoreError as exc:
            raise _failed(exc) from exc

    def keep_cookies(self, cookies: Sequence[StoredCookie]) -> None:
        try:
            self._store.keep_cookies(cookies)
        except StoreError as exc:
            raise _failed(exc) from exc

    def change_cookies(self, kept: Sequence[StoredCookie],
                       gone: Sequence[tuple[str, str, str]]) -> None:
        try:
            self._store.change_cookies(kept, gone)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def cookies(self) -> list[StoredCookie]:
        try:
            return await self._store.cookies()
        except StoreError as exc:
            raise _failed(exc) from exc

    def tally(self) -> CrawlCounts:
        try:
            return self._store.tally()
        except StoreError as exc:
            raise _failed(exc) from exc

    async def save_stats(self, stats: str) -> None:
        try:
            await self._store.save_stats(stats)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def finish_run(self, status: str, stats: str | None = None) -> None:
        try:
            await self._store.finish_run(status, stats)
        except StoreError as exc:
            raise _failed(exc) from exc

    # -- reading ----------------------------------------------------------------------------

    async def counts(self) -> CrawlCounts:
        try:
            return await self._store.counts()
        except StoreError as exc:
            raise _failed(exc) from exc

    async def breakdown(self) -> Breakdown:
        try:
            return await self._store.breakdown()
        except StoreError as exc:
            raise _failed(exc) from exc

    async def items(self) -> AsyncGenerator[str, None]:
        try:
            async with contextlib.aclosing(self._store.items()) as items:
                async for item in items:
                    yield item
        except StoreError as exc:
            raise _failed(exc) from exc

    async def items_after(self, position: int, limit: int) -> list[tuple[int, str]]:
        try:
            return await self._store.items_after(position, limit)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def feed_marks(self) -> dict[str, FeedMark]:
        try:
            return await self._store.feed_marks()
        except StoreError as exc:
            raise _failed(exc) from exc

    def keep_feed_mark(self, mark: FeedMark) -> None:
        try:
            self._store.keep_feed_mark(mark)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def runs(self) -> list[RunRecord]:
        try:
            return await self._store.runs()
        except StoreError as exc:
            raise _failed(exc) from exc

    async def failures(self, limit: int) -> list[FailedRequest]:
        try:
            return await self._store.failures(limit)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def processes(self) -> list[ProcessRecord]:
        try:
            return await self._store.processes()
        except StoreError as exc:
            raise _failed(exc) from exc

    async def host_states(self, top: int) -> HostStates | None:
        try:
            return await self._store.host_states(top)
        except StoreError as exc:
            raise _failed(exc) from exc

    async def live(self) -> bool:
        try:
            return await self._store.live()
        except StoreError as exc:
            raise _failed(exc) from exc

    async def spider_name(self) -> str:
        try:
            return await self._store.spider_name()
        except StoreError as exc:
            raise _failed(exc) from exc

    async def close(self) -> None:
        try:
            await self._store.close()
        except StoreError as exc:
            raise _failed(exc) from exc
