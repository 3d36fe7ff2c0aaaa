"""Reading a state file: counts, items, runs and failures, from any schema this version
knows (an older file opened to read is read as it is)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Sequence

import aiosqlite

from storage.base import (
    Breakdown,
    CrawlCounts,
    FailedRequest,
    FeedMark,
    RequestState,
    RunRecord,
    StoredCookie,
)
from storage.census import HostStates, ProcessRecord
from storage.sqlite.schema import failure_columns, stats_column
from storage.sqlite.transactions import Transactions


class Reader:
    def __init__(self, conn: aiosqlite.Connection, transactions: Transactions,
                 version: int) -> None:
        self._conn = conn
        self._transactions = transactions
        self.schema = version  # of the file: an older one is read through its own columns

    async def scalar(self, sql: str, params: Sequence[object] = ()) -> object:
        async with self._transactions.reading(), self._conn.execute(sql, params) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def meta(self, key: str) -> str | None:
        value = await self.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def counts(self) -> CrawlCounts:
        async with self._transactions.settled():
            async with self._conn.execute(
                "SELECT state, count(*) FROM requests GROUP BY state"
            ) as cur:
                by_state = {state: n async for state, n in cur}
            async with self._conn.execute("SELECT count(*) FROM items") as cur:
                items = (await cur.fetchone() or (0,))[0]
            async with self._conn.execute(
                "SELECT name, value FROM counters ORDER BY name"
            ) as cur:
                counters = {name: value async for name, value in cur}
        return CrawlCounts.of(by_state, items, counters)

    async def cookies(self) -> list[StoredCookie]:
        if self.schema < 5:
            return []  # a file from before sessions were kept
        async with self._transactions.reading(), self._conn.execute(
            "SELECT name, value, domain, path, expires, secure, http_only, host_only"
            " FROM cookies ORDER BY domain, path, name"
        ) as cur:
            rows = await cur.fetchall()
        return [StoredCookie(n, v, d, p, e, bool(s), bool(h), bool(o))
                for n, v, d, p, e, s, h, o in rows]

    async def items(self) -> AsyncGenerator[str, None]:
        async with self._transactions.reading(), \
                self._conn.execute("SELECT data FROM items ORDER BY id") as cur:
            async for (data,) in cur:
                yield data

    async def items_after(self, position: int, limit: int) -> list[tuple[int, str]]:
        # Settled: only what is committed (a transaction under way holds the next items).
        async with self._transactions.settled(), self._conn.execute(
            "SELECT id, data FROM items WHERE id > ? ORDER BY id LIMIT ?", (position, limit)
        ) as cur:
            return list(await cur.fetchall())  # type: ignore[arg-type]

    async def feed_marks(self) -> dict[str, FeedMark]:
        if self.schema < 7:
            return {}  # a file from before feeds
        async with self._transactions.settled(), self._conn.execute(
            "SELECT name, format, item, length, checksum, extra FROM feeds"
        ) as cur:
            return {row[0]: FeedMark(*row) async for row in cur}

    async def runs(self) -> list[RunRecord]:
        stats = stats_column(self.schema)
        async with self._transactions.settled(), self._conn.execute(
            f"SELECT id, started, ended, status, config, {stats} FROM runs ORDER BY id"
        ) as cur:
            return [RunRecord(*row) async for row in cur]

    async def processes(self, live: bool = False) -> list[ProcessRecord]:
        """The runs, one process at a time: the last one is running if `live` (the file's
        lock is held). Last seen: when it ended, or last saved its figures."""
        stats = stats_column(self.schema)
        async with self._transactions.settled(), self._conn.execute(
            f"SELECT id, hostname, pid, started, ended, status, {stats} FROM runs ORDER BY id"
        ) as cur:
            rows = list(await cur.fetchall())
        now = time.time()  # SQLite's clock is this machine's
        found = []
        for i, (run, host, pid, started, ended, stored, figures) in enumerate(rows):
            seen = ended if ended is not None else _saved_at(figures) or started
            gone = stored == "running" and not (live and i == len(rows) - 1)
            found.append(ProcessRecord(run, host, pid, started, seen, now - seen,
                                       "crashed" if gone else stored, None, None))
        return found

    async def host_states(self, top: int) -> HostStates | None:
        return None  # no hosts table: one process at a time has no leases to show

    async def breakdown(self) -> Breakdown:
        statuses: dict[int, int] = {}
        errors: dict[str, int] = {}
        kind, _ = failure_columns(self.schema)
        async with self._transactions.settled():
            async with self._conn.execute(
                f"SELECT status, count(*) FROM requests WHERE state = {RequestState.DONE}"
                " AND status IS NOT NULL GROUP BY status ORDER BY status"
            ) as cur:
                async for status, n in cur:
                    statuses[status] = n
            async with self._conn.execute(
                f"SELECT {kind} AS k, count(*) FROM requests"
                f" WHERE state = {RequestState.FAILED} GROUP BY k ORDER BY count(*) DESC"
            ) as cur:
                async for name, n in cur:
                    errors[name or "unknown"] = n
        return Breakdown(statuses, errors)

    async def failures(self, limit: int) -> list[FailedRequest]:
        kind, message = failure_columns(self.schema)
        async with self._transactions.settled(), self._conn.execute(
            f"SELECT url, status, {kind}, {message} FROM requests"
            f" WHERE state = {RequestState.FAILED} ORDER BY id DESC LIMIT ?",
            (limit,),
        ) as cur:
            return [FailedRequest(*row) async for row in cur]

    async def next_due(self) -> float | None:
        async with self._transactions.settled():
            value = await self.scalar(
                f"SELECT min(not_before) FROM requests WHERE state = {RequestState.QUEUED}"
            )
        return None if value is None else float(value)  # type: ignore[arg-type]


def _saved_at(figures: str | None) -> float | None:
    """When a run last saved its statistics (JSON text the crawler wrote), if it says."""
    try:
        value = json.loads(figures or "{}").get("saved_at")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None
