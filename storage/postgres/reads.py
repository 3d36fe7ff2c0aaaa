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
from storage.census import HostRecord, HostState, HostStates, ProcessRecord
from storage.postgres import runs
from storage.postgres.session import Session

ITEM_PAGE = 1000  # items read a query at a time by `items()`: the lock is never held long

_EPOCH = "extract(epoch FROM {})::float8"
# Every run with what the database says of it now: alive (its process holds its lock, see
# runs.py), seconds since it was last seen and the leases it holds, on the database's
# clock. A crawl of schema 2 read as it is (stats open it read-only) has no `pages`:
# read through the row as JSON, it is NULL there.
_PROCESSES = (
    f"SELECT r.id, r.hostname, r.pid, {_EPOCH.format('r.started')},"
    f" {_EPOCH.format('r.last_seen')}, {_EPOCH.format('now() - r.last_seen')},"
    f" r.status, r.status = 'running' AND r.id IN ({runs.LIVE_RUNS}),"
    " (to_jsonb(r) ->> 'pages')::bigint, coalesce(h.leases, 0)"
    " FROM runs r LEFT JOIN (SELECT lease_run, count(*) AS leases FROM hosts"
    " WHERE lease_until > now() GROUP BY lease_run) h ON h.lease_run = r.id ORDER BY r.id")
# Each host's requests by state, its gate and its holder (a lease run out holds nothing).
_HOSTS = f"""
SELECT h.host, coalesce(n.queued, 0), coalesce(n.due, 0), coalesce(n.leased, 0),
       coalesce(n.done, 0), coalesce(n.failed, 0),
       CASE WHEN h.lease_until > now() THEN h.lease_run END,
       CASE WHEN h.next_allowed > now()
            THEN {_EPOCH.format('h.next_allowed - now()')} ELSE 0 END
FROM hosts h LEFT JOIN (
    SELECT host, count(*) FILTER (WHERE state = {RequestState.QUEUED}) AS queued,
           count(*) FILTER (WHERE state = {RequestState.QUEUED} AND not_before <= now()) AS due,
           count(*) FILTER (WHERE state = {RequestState.LEASED}) AS leased,
           count(*) FILTER (WHERE state = {RequestState.DONE}) AS done,
           count(*) FILTER (WHERE state = {RequestState.FAILED}) AS failed
    FROM requests WHERE host IS NOT NULL GROUP BY host) n ON n.host = h.host
"""

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

    async def processes(self) -> list[ProcessRecord]:
        rows = await self._session.read(_processes)
        return [ProcessRecord(run, host, pid, started, seen, ago,
                              # A run marked running whose process is gone: it crashed.
                              "crashed" if status == "running" and not live else status,
                              pages, leases)
                for run, host, pid, started, seen, ago, status, live, pages, leases in rows]

    async def host_states(self, top: int) -> HostStates:
        rows = await self._session.read(lambda conn: conn.fetch(_HOSTS))
        hosts = [_host(row) for row in rows]
        states = dict.fromkeys(HostState, 0)
        holders: dict[int, int] = {}
        for h in hosts:
            states[h.state] += 1
            if h.holder is not None:
                holders[h.holder] = holders.get(h.holder, 0) + 1
        busiest = sorted(hosts, key=lambda h: (-(h.queued + h.in_flight), -h.done, h.host))
        return HostStates(states, holders, busiest[:top])

    async def failures(self, limit: int) -> list[FailedRequest]:
        rows = await self._session.read(lambda conn: conn.fetch(
            f"SELECT url, status, kind, error FROM requests"
            f" WHERE state = {RequestState.FAILED} ORDER BY id DESC LIMIT $1", limit))
        return [FailedRequest(*row) for row in rows]


async def _processes(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    # The lock keys are made of the schema's name: the one this session reads.
    return list(await conn.fetch(_PROCESSES, await conn.fetchval("SELECT current_schema()")))


def _host(row: asyncpg.Record) -> HostRecord:
    host, queued, due, leased, done, failed, holder, gate = row
    # Requests still leased under a lease that ran out go back at its takeover: work left.
    if holder is not None:
        state = HostState.LEASED
    elif queued + leased == 0:
        state = HostState.DONE
    elif gate > 0 or due + leased == 0:
        state = HostState.WAITING
    else:
        state = HostState.READY
    return HostRecord(host, state, queued, leased, done, failed, holder, gate)


async def _counts(conn: asyncpg.Connection) -> CrawlCounts:
    by_state = dict(list(await conn.fetch("SELECT state, count(*) FROM requests GROUP BY state")))
    items = await conn.fetchval("SELECT count(*) FROM items")
    counters = {name: value for name, value in await conn.fetch(
        "SELECT name, value FROM counters ORDER BY name")}
    return CrawlCounts.of(by_state, items, counters)


async def _breakdown(conn: asyncpg.Connection) -> Breakdown:
    statuses = {status: n for status, n in await conn.fetch(
        f"SELECT status, count(*) FROM requests WHERE state = {RequestState.DONE}"
        " AND status IS NOT NULL GROUP BY status ORDER BY status")}
    errors = {kind or "unknown": n for kind, n in await conn.fetch(
        f"SELECT kind, count(*) FROM requests WHERE state = {RequestState.FAILED}"
        " GROUP BY kind ORDER BY count(*) DESC")}
    return Breakdown(statuses, errors)
