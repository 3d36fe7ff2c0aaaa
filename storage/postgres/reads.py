"""Reading a crawl in PostgreSQL: counts, items, runs, failures. Times come back as the
epoch seconds the interface speaks; a `not_before` as the client's wall-clock time it is,
counted from the database's `now()`."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import asyncpg

from storage.base import (
    Breakdown,
    CrawlCounts,
    FailedRequest,
    FeedMark,
    RequestState,
    RunRecord,
    StoredCookie,
)
from storage.postgres.session import Session

ITEM_PAGE = 1000  # items read a query at a time by `items()`: the lock is never held long

_RUNS = ("SELECT id, extract(epoch FROM started)::float8, extract(epoch FROM ended)::float8,"
         " status, config, stats FROM runs ORDER BY id")


class Reader:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def meta(self, key: str) -> str | None:
        value = await self._session.read(
            lambda conn: conn.fetchval("SELECT value FROM meta WHERE key = $1", key))
        return None if value is None else str(value)

    async def counts(self) -> CrawlCounts:
        return await self._session.read(_counts)

    async def cookies(self) -> list[StoredCookie]:
        rows = await self._session.read(lambda conn: conn.fetch(
            "SELECT name, value, domain, path, expires, secure, http_only, host_only"
            " FROM cookies ORDER BY domain, path, name"))
        return [StoredCookie(*row) for row in rows]

    async def items(self) -> AsyncGenerator[str, None]:
        position = 0
        while True:
            page = await self.items_after(position, ITEM_PAGE)
            for _, data in page:
                yield data
            if len(page) < ITEM_PAGE:
                return
            position = page[-1][0]

    async def items_after(self, position: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._session.read(lambda conn: conn.fetch(
            "SELECT id, data FROM items WHERE id > $1 ORDER BY id LIMIT $2", position, limit))
        return [(row[0], row[1]) for row in rows]

    async def feed_marks(self) -> dict[str, FeedMark]:
        rows = await self._session.read(lambda conn: conn.fetch(
            "SELECT name, format, item, length, checksum, extra FROM feeds"))
        return {row[0]: FeedMark(*row) for row in rows}

    async def runs(self) -> list[RunRecord]:
        return [RunRecord(*row) for row in await self._session.read(
            lambda conn: conn.fetch(_RUNS))]

    async def breakdown(self) -> Breakdown:
        return await self._session.read(_breakdown)

    async def failures(self, limit: int) -> list[FailedRequest]:
        rows = await self._session.read(lambda conn: conn.fetch(
            f"SELECT url, status, kind, error FROM requests"
            f" WHERE state = {RequestState.FAILED} ORDER BY id DESC LIMIT $1", limit))
        return [FailedRequest(*row) for row in rows]


async def _counts(conn: asyncpg.Connection) -> CrawlCounts:
    by_state = dict.fromkeys(RequestState, 0)
    for state, n in await conn.fetch("SELECT state, count(*) FROM requests GROUP BY state"):
        by_state[RequestState(state)] = n
    items = await conn.fetchval("SELECT count(*) FROM items")
    counters = {name: value for name, value in await conn.fetch(
        "SELECT name, value FROM counters ORDER BY name")}
    return CrawlCounts(
        queued=by_state[RequestState.QUEUED],
        leased=by_state[RequestState.LEASED],
        done=by_state[RequestState.DONE],
        failed=by_state[RequestState.FAILED],
        items=int(items or 0),
        counters=counters,
        parked=by_state[RequestState.PARKED],
    )


async def _breakdown(conn: asyncpg.Connection) -> Breakdown:
    statuses = {status: n for status, n in await conn.fetch(
        f"SELECT status, count(*) FROM requests WHERE state = {RequestState.DONE}"
        " AND status IS NOT NULL GROUP BY status ORDER BY status")}
    errors = {kind or "unknown": n for kind, n in await conn.fetch(
        f"SELECT kind, count(*) FROM requests WHERE state = {RequestState.FAILED}"
        " GROUP BY kind ORDER BY count(*) DESC")}
    return Breakdown(statuses, errors)
