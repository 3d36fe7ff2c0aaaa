"""The SQL of the write path: admitting requests, and applying a batch of outcomes with
fencing, each outcome all-or-nothing. Runs inside a transaction its caller holds."""

from __future__ import annotations

import logging
import operator
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiosqlite

from storage.base import (
    DUPLICATE_COUNTER,
    PARKED_COUNTER,
    Completion,
    Defer,
    LeasedRequest,
    NewRequest,
    Outcome,
    RequestState,
    Retry,
)
from storage.fingerprints import fingerprint, request_fingerprint
from storage.guarded import GuardedWriter
from storage.ledger import CookieChanges, Ledger
from storage.sqlite.transactions import DATA_ERRORS, storable

log = logging.getLogger("storage")

__all__ = ["ADD_COUNTER", "INSERT_REQUEST", "LEASED", "Writer", "fingerprint",
           "request_fingerprint"]

_PLAIN_COLUMNS = ("fp", "url", "priority", "depth", "callback", "cb_kwargs", "redirects",
                  "parent")
_COLUMNS = (*_PLAIN_COLUMNS, "method", "spec", "body")


def _insert(columns: tuple[str, ...], state: str = "") -> str:
    names = ", ".join(columns) + (", state" if state else "")
    marks = ", ".join("?" * len(columns)) + (f", {state}" if state else "")
    return f"INSERT INTO requests ({names}) VALUES ({marks}) ON CONFLICT (fp) DO NOTHING"


def _unpark(columns: tuple[str, ...]) -> str:
    # A parked request found again where it may be queued is queued as found this time.
    sets = ", ".join(f"{name} = ?" for name in columns[2:])
    if columns is _PLAIN_COLUMNS:
        sets += ", method = NULL, spec = NULL, body = NULL"
    return (f"UPDATE requests SET state = {RequestState.QUEUED}, {sets}"
            f" WHERE fp = ? AND state = {RequestState.PARKED}")


# A batch of plain GETs (the crawl's bulk) binds and stores the columns it always had; a
# batch with any other request, every column. Each as (insert, insert parked, unpark).
INSERT_REQUEST = _insert(_PLAIN_COLUMNS)
_PLAIN_SQL = (INSERT_REQUEST, _insert(_PLAIN_COLUMNS, str(int(RequestState.PARKED))),
              _unpark(_PLAIN_COLUMNS))
_FULL_SQL = (_insert(_COLUMNS), _insert(_COLUMNS, str(int(RequestState.PARKED))),
             _unpark(_COLUMNS))
_PLAIN = {(None, None, None, False)}  # the last fields of a NewRequest that is a plain GET
_EXTRAS = operator.itemgetter(slice(7, None))
LEASED = f"state = {RequestState.LEASED} AND run = ?"
# A row's kind, when set, goes with the error beside it: the failure's. A retry's or a
# deferral's error is the last attempt's words alone, which nothing groups.
_COMPLETE = (
    f"UPDATE requests SET state = {RequestState.DONE}, status = ?, error = NULL, kind = NULL"
    f" WHERE id = ? AND {LEASED}"
)
_RETRY = (
    f"UPDATE requests SET state = {RequestState.QUEUED}, attempts = attempts + 1,"
    f" not_before = ?, error = ?, kind = NULL, status = ?, run = NULL WHERE id = ? AND {LEASED}"
)
_DEFER = (
    f"UPDATE requests SET state = {RequestState.QUEUED}, not_before = ?, error = ?, kind = NULL,"
    f" run = NULL WHERE id = ? AND {LEASED}"
)
_FAIL = (
    f"UPDATE requests SET state = {RequestState.FAILED}, attempts = attempts + 1,"
    f" kind = ?, error = ?, status = ? WHERE id = ? AND {LEASED}"
)
_CLAIM = (
    f"UPDATE requests SET state = {RequestState.LEASED}, run = :run WHERE id IN ("
    f" SELECT id FROM requests WHERE state = {RequestState.QUEUED} AND not_before <= :now"
    " ORDER BY priority DESC, id LIMIT :limit)"
    " RETURNING id, url, callback, cb_kwargs, priority, depth, redirects, attempts,"
    " method, spec, body"
)
_DELETE_COOKIE = ("DELETE FROM cookies WHERE domain = ?1 AND rtrim(path, '/') = ?2"
                  " AND name = ?3")
_INSERT_COOKIE = (
    "INSERT OR REPLACE INTO cookies"
    " (domain, path, name, value, expires, secure, http_only, host_only)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SAVE_FEED = ("INSERT OR REPLACE INTO feeds (name, format, item, length, checksum, extra)"
              " VALUES (?, ?, ?, ?, ?, ?)")
ADD_COUNTER = (
    "INSERT INTO counters (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)


class Writer(GuardedWriter):
    data_errors = DATA_ERRORS
    storable = staticmethod(storable)

    def __init__(self, conn: aiosqlite.Connection, ledger: Ledger) -> None:
        self._conn = conn
        self._ledger = ledger
        self.parking = False  # the crawl has parked requests: new ones may unpark them

    async def lease(self, run: int, now: float, limit: int) -> list[LeasedRequest]:
        """Lease up to `limit` queued requests due at `now`, in the queue's order."""
        async with self._conn.execute(_CLAIM, {"run": run, "now": now, "limit": limit}) as cur:
            rows = await cur.fetchall()  # in one hop to SQLite's thread
        leased = [LeasedRequest(*row) for row in rows]
        self._ledger.delta.move("queued", "leased", len(leased))
        # RETURNING gives no order; restore the queue's.
        leased.sort(key=lambda r: (-r.priority, r.id))
        return leased

    async def _statement(self, sql: str) -> None:
        await self._conn.execute(sql)

    async def apply_pending(self, run: int) -> None:
        """Write every buffered outcome (and the jar kept before them) inside the caller's
        transaction."""
        cookies = self._ledger.take_cookies()
        if cookies:
            await self._write_cookies(cookies)
        marks = self._ledger.take_feeds()
        if marks:
            await self._conn.executemany(_SAVE_FEED, [
                (m.name, m.format, m.item, m.length, m.checksum, m.extra) for m in marks])
        if not self._ledger.pending:
            return
        batch = self._ledger.take()
        await self._apply_guarded(batch, run)

    async def _write_cookies(self, cookies: CookieChanges) -> None:
        # Only the cookies that changed since the last commit. A path is one cookie's with or
        # without trailing slashes (as the jar files it): the old row goes, whatever its own.
        if cookies.replace:
            await self._conn.execute("DELETE FROM cookies")
        else:
            await self._conn.executemany(_DELETE_COOKIE, list(cookies.by_key))
        await self._conn.executemany(_INSERT_COOKIE, [
            (c.domain, c.path, c.name, c.value, c.expires, c.secure, c.http_only, c.host_only)
            for c in cookies.by_key.values() if c is not None])

    async def _held(self, batch: list[Outcome], run: int) -> set[int]:
        """Which of the batch's requests this run still holds a lease on."""
        ids = list({o.request_id for o in batch})
        held: set[int] = set()
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._conn.execute(
                f"SELECT id FROM requests WHERE id IN ({marks}) AND {LEASED}", (*chunk, run)
            ) as cur:
                held.update(row[0] for row in await cur.fetchall())
        return held

    async def _apply(self, batch: list[Outcome], run: int) -> None:
        # Fencing: only the lease holder's outcome counts, and only once.
        held = await self._held(batch, run)
        done, retries, defers, failures = [], [], [], []
        items: list[tuple[int, str]] = []
        new: list[NewRequest] = []
        parked: list[NewRequest] = []
        counters: Counter[str] = Counter()
        for o in batch:
            if o.request_id not in held:
                continue
            held.discard(o.request_id)
            if isinstance(o, Completion):
                done.append((o.status, o.request_id, run))
                items.extend((o.request_id, data) for data in o.items)
                new.extend(o.requests)
                parked.extend(o.parked)
                counters.update(o.counters)
            elif isinstance(o, Retry):
                retries.append((o.not_before, o.error, o.status, o.request_id, run))
            elif isinstance(o, Defer):
                defers.append((o.not_before, o.reason, o.request_id, run))
            else:
                failures.append((o.kind, o.error, o.status, o.request_id, run))
                # What the crawler made of the failure (an errback's output), with it.
                items.extend((o.request_id, data) for data in o.items)
                new.extend(o.requests)
                parked.extend(o.parked)
                counters.update(o.counters)
        conn = self._conn
        # Outputs first, then the done marks: all inside one transaction, so either a request
        # is done with all its outputs stored, or it is not done and stored nothing.
        if items:
            await conn.executemany("INSERT INTO items (request, data) VALUES (?, ?)", items)
        added = await self.insert_requests(new, counters)
        added += await self._park(parked, counters)  # after: a request queued here wins
        if len(new) + len(parked) > added:
            counters[DUPLICATE_COUNTER] += len(new) + len(parked) - added
        for sql, rows in ((_COMPLETE, done), (_RETRY, retries), (_DEFER, defers),
                          (_FAIL, failures)):
            if rows:
                await conn.executemany(sql, rows)
        await self.add_counters(counters)
        tally = self._ledger.delta
        tally.move("leased", "done", len(done))
        tally.move("leased", "failed", len(failures))
        tally.move("leased", "queued", len(retries) + len(defers))
        tally.items += len(items)

    async def insert_requests(self, requests: Sequence[NewRequest],
                              counters: Counter[str]) -> int:
        """Queue the requests that have no row yet, and the parked ones found again; returns
        how many were queued."""
        if not requests:
            return 0
        unparked, (sql, rows) = 0, _rows(requests)
        if self.parking:  # only a crawl that parked requests pays for the extra lookups
            # A row is (fp, url, priority, depth, callback, cb_kwargs, redirects, parent[,
            # method, spec, body]); the update takes all but the first two, then fp.
            cur = await self._conn.executemany(sql[2], [(*row[2:], row[0]) for row in rows])
            unparked = max(cur.rowcount, 0)
            counters[PARKED_COUNTER] -= unparked
            self._ledger.delta.parked -= unparked
        cur = await self._conn.executemany(sql[0], rows)
        added = max(cur.rowcount, 0) + unparked
        self._ledger.delta.queued += added
        return added

    async def _park(self, requests: Sequence[NewRequest], counters: Counter[str]) -> int:
        """Keep requests that have no row yet parked; returns how many."""
        if not requests:
            return 0
        sql, rows = _rows(requests)
        cur = await self._conn.executemany(sql[1], rows)
        parked = max(cur.rowcount, 0)
        self.parking = self.parking or parked > 0
        counters[PARKED_COUNTER] += parked
        self._ledger.delta.parked += parked
        return parked

    async def add_counters(self, counters: Counter[str]) -> None:
        counts = [(name, value) for name, value in counters.items() if value]
        if counts:
            await self._conn.executemany(ADD_COUNTER, counts)
        self._ledger.delta.counters.update(counters)


def _rows(requests: Sequence[NewRequest]) -> tuple[tuple[str, str, str],
                                                   list[tuple[Any, ...]]]:
    """The statements for a batch, and its rows."""
    if set(map(_EXTRAS, requests)) == _PLAIN:  # in C: no Python call a request
        return _PLAIN_SQL, [(fingerprint(r.url), r.url, r.priority, r.depth, r.callback,
                             r.cb_kwargs, r.redirects, r.parent) for r in requests]
    return _FULL_SQL, [(request_fingerprint(r), r.url, r.priority, r.depth, r.callback,
                        r.cb_kwargs, r.redirects, r.parent, r.method, r.spec, r.body)
                       for r in requests]
