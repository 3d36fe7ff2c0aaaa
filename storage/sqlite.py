"""The SQLite store: one file holds the whole crawl (frontier, items, counters, runs).

Durability: WAL with synchronous=NORMAL survives a killed process (kill -9) at any moment; a
power cut may lose the last group of commits, which are then fetched again, never half-stored.
One writer at a time: a run holds an flock on the file, so every lease found at start-up
belongs to a run that is gone and goes straight back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.base import (
    DUPLICATE_COUNTER,
    PARKED_COUNTER,
    Breakdown,
    Completion,
    CrawlCounts,
    Defer,
    FailedRequest,
    Failure,
    LeasedRequest,
    NewRequest,
    NotAStateFile,
    Outcome,
    Release,
    RequestState,
    Retry,
    RunInfo,
    RunRecord,
    SchemaMismatch,
    SpiderMismatch,
    Store,
    StoreError,
)
from storage.files import (
    StateFileUnavailable,
    check_writable,
    disk_full,
    held,
    lock,
    open_failure,
    unlock,
    writable,
)

T = TypeVar("T")
MAX_PENDING_NEW = 32_768  # new requests held for the next commit, at most: 64 MB of long URLs
log = logging.getLogger("storage")
APPLICATION_ID = 0x43524157  # "CRAW": marks a file as ours before any table is read
SCHEMA_VERSION = 3
_PARKED_INDEX = (f"CREATE INDEX IF NOT EXISTS requests_parked ON requests (depth)"
                 f" WHERE state = {RequestState.PARKED}")
# Opening an older file for writing brings it up to date (reading needs nothing): schema 1
# lacked runs.stats, schema 2 parked requests (an older crawler must not meet that state).
_MIGRATIONS = {1: ("ALTER TABLE runs ADD COLUMN stats TEXT",), 2: (_PARKED_INDEX,)}
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    ended REAL,
    pid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    stats TEXT
);
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    fp INTEGER NOT NULL UNIQUE,
    url TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    depth INTEGER NOT NULL DEFAULT 0,
    callback TEXT,
    cb_kwargs TEXT,
    redirects INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    parent INTEGER,
    run INTEGER,
    status INTEGER,
    error TEXT
);
CREATE INDEX requests_queue ON requests (priority DESC, id, not_before) WHERE state = 0;
{_PARKED_INDEX};
CREATE TABLE items (id INTEGER PRIMARY KEY, request INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""

_INSERT_REQUEST = (
    "INSERT INTO requests (fp, url, priority, depth, callback, cb_kwargs, redirects, parent)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fp) DO NOTHING"
)
_INSERT_PARKED = (
    "INSERT INTO requests"
    " (fp, url, priority, depth, callback, cb_kwargs, redirects, parent, state)"
    f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, {RequestState.PARKED}) ON CONFLICT (fp) DO NOTHING"
)
# A parked request found again where it may be queued is queued as found this time.
_UNPARK_FOUND = (
    f"UPDATE requests SET state = {RequestState.QUEUED}, priority = ?, depth = ?,"
    " callback = ?, cb_kwargs = ?, redirects = ?, parent = ?"
    f" WHERE fp = ? AND state = {RequestState.PARKED}"
)
_UNPARK_TO = (
    f"UPDATE requests SET state = {RequestState.QUEUED}"
    f" WHERE state = {RequestState.PARKED} AND depth <= coalesce(?, depth)"
)
_LEASED = f"state = {RequestState.LEASED} AND run = ?"
_COMPLETE = (
    f"UPDATE requests SET state = {RequestState.DONE}, status = ?, error = NULL"
    f" WHERE id = ? AND {_LEASED}"
)
_RETRY = (
    f"UPDATE requests SET state = {RequestState.QUEUED}, attempts = attempts + 1,"
    f" not_before = ?, error = ?, status = ?, run = NULL WHERE id = ? AND {_LEASED}"
)
_DEFER = (
    f"UPDATE requests SET state = {RequestState.QUEUED}, not_before = ?, error = ?, run = NULL"
    f" WHERE id = ? AND {_LEASED}"
)
_FAIL = (
    f"UPDATE requests SET state = {RequestState.FAILED}, attempts = attempts + 1,"
    f" error = ?, status = ? WHERE id = ? AND {_LEASED}"
)
_RELEASE = (
    f"UPDATE requests SET state = {RequestState.QUEUED}, run = NULL WHERE id = ? AND {_LEASED}"
)
_CLAIM = (
    f"UPDATE requests SET state = {RequestState.LEASED}, run = :run WHERE id IN ("
    f" SELECT id FROM requests WHERE state = {RequestState.QUEUED} AND not_before <= :now"
    " ORDER BY priority DESC, id LIMIT :limit)"
    " RETURNING id, url, callback, cb_kwargs, priority, depth, redirects, attempts"
)
_ADD_COUNTER = (
    "INSERT INTO counters (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)


# What one outcome's own data can make a write fail with: text that is not Unicode (a lone
# surrogate), an integer too big for SQLite, a value of the wrong type or too big, a NULL.
# Unlike a full disk or an I/O error, these fail that outcome alone, not the commit.
_DATA_ERRORS = (ValueError, OverflowError, sqlite3.DataError, sqlite3.IntegrityError,
                sqlite3.ProgrammingError)


def fingerprint(url: str) -> int:
    """A signed 64-bit key for dedup: 8 bytes per row instead of a second copy of the URL."""
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "big", signed=True)


def _describe(path: Path) -> str:
    return f"'{path}'"


def _inspect(path: Path, uri: str | None = None) -> int | None:
    """Check an existing file without writing to it (through `uri`, a read-only URI for it).
    Returns its schema version, or None when it is new or empty."""
    if not path.exists():
        return None
    # A device (--state /dev/null) reads as empty: refused before SQLite writes beside it.
    if not path.is_file():
        raise NotAStateFile(f"{_describe(path)} is not a regular file")
    try:
        if path.stat().st_size == 0:
            return None
        with path.open("rb") as fh:
            header = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise open_failure(path, exc) from exc
    if header != _SQLITE_MAGIC:
        raise NotAStateFile(f"{_describe(path)} is not a crawl state file (not an SQLite database)")
    try:
        conn = sqlite3.connect(uri or _inspection_uri(path), uri=True)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise _refusal(path, exc, "is damaged or not a crawl state file") from exc
    if app_id == 0 and tables == 0:
        return None
    if app_id != APPLICATION_ID:
        raise NotAStateFile(
            f"{_describe(path)} is an SQLite database, but not a crawl state file; "
            "it was left untouched"
        )
    if version != SCHEMA_VERSION and version not in _MIGRATIONS:
        newer = "a newer" if version > SCHEMA_VERSION else "an older"
        raise SchemaMismatch(
            f"{_describe(path)} uses state-file schema {version}, made by {newer} version of the "
            f"crawler; this version reads schema {SCHEMA_VERSION}. The file was left untouched."
        )
    return int(version)


class SQLiteStore(Store):
    """Store on one SQLite file. Open with `await SQLiteStore.open(path)`."""

    def __init__(self, path: Path, conn: aiosqlite.Connection, *, readonly: bool,
                 lock_fd: int | None, batch_size: int) -> None:
        self._path = path
        self._conn = conn
        self._readonly = readonly
        self._lock_fd = lock_fd
        self._batch_size = batch_size
        self._pending: list[Outcome] = []
        self._pending_new = 0  # requests found by the pending outcomes
        self._applying: list[Outcome] = []  # taken into the open transaction
        self._writes: set[asyncio.Future[Any]] = set()  # transactions started, not ended
        self._write_lock = asyncio.Lock()
        self._run_id: int | None = None
        self._closed = False
        self._schema = SCHEMA_VERSION
        self._tally = _Tally()  # this run's running counts: no table scan to show progress
        self._tally_delta = _Tally()  # of the open transaction, kept only if it commits
        self._source: _ReadSource | None = None  # how a read-only store reads its file
        self._parking = False  # the crawl has parked requests: new ones may unpark them

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, readonly: bool = False,
                   batch_size: int = 512) -> SQLiteStore:
        """Open a state file. Read-only opens never create, lock or change anything, and
        work on read-only files, folders and media too."""
        p = Path(path)
        if readonly:
            return await cls._open_to_read(p, batch_size)
        await asyncio.to_thread(check_writable, p)
        version = await asyncio.to_thread(_inspect, p)
        lock_fd = lock(p)
        try:
            conn = await _connect(p, readonly=False)
        except BaseException:
            unlock(lock_fd)
            raise
        store = cls(p, conn, readonly=False, lock_fd=lock_fd, batch_size=batch_size)
        store._schema = version or SCHEMA_VERSION
        if version is None:
            try:
                await store._create_schema()
            except BaseException:
                # The connection's thread would keep the process alive: close what we opened.
                await store.close()
                raise
        return store

    @classmethod
    async def _open_to_read(cls, path: Path, batch_size: int) -> SQLiteStore:
        source = await asyncio.to_thread(_ReadSource.of, path)
        try:
            version = await asyncio.to_thread(_inspect, source.inspected, source.uri)
            if version is None:
                raise NotAStateFile(f"{_describe(path)} does not exist or holds no crawl")
            conn = await _connect(source.uri or source.target, readonly=True,
                                  uri=source.uri is not None, shown=path)
        except BaseException:
            source.discard()
            raise
        store = cls(path, conn, readonly=True, lock_fd=None, batch_size=batch_size)
        store._schema = version
        store._source = source
        return store

    async def _transaction(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` as one write transaction under the write lock.

        Shielded: a caller cancelled mid-way (a worker at the end of a stop) must not leave
        the connection between BEGIN and COMMIT. The transaction finishes on its own.
        """
        task = asyncio.ensure_future(self._run_transaction(work))
        task.add_done_callback(_retrieve)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def _run_transaction(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._write_lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                result = await work()
                await self._conn.execute("COMMIT")
                self._tally.merge(self._tally_delta)
            except BaseException as exc:
                # Nothing of this transaction was written: its outcomes go back in the buffer
                # (fencing makes a second attempt safe), and SQLite may have rolled back
                # already (a full disk does that), so only roll back what is still open.
                self._pending[:0] = self._applying
                self._pending_new = sum(map(_found, self._pending))
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    full = disk_full(self._path)
                    why = f"{full} (SQLite: {exc})" if full else str(exc)
                    raise StoreError(f"writing {_describe(self._path)} failed: {why}") from exc
                if isinstance(exc, _DATA_ERRORS):  # e.g. a spider name that is not Unicode
                    raise StoreError(f"cannot store this in {_describe(self._path)}: "
                                     f"{_storable(str(exc))}") from exc
                raise
            finally:
                self._applying = []
                self._tally_delta = _Tally()
            return result

    async def _create_schema(self) -> None:
        async def create() -> None:
            # A file another process made a state file meanwhile is not created again.
            if await self._scalar("PRAGMA application_id") != 0:
                return
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    await self._conn.execute(statement)
            await self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            await self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('created', ?)", (str(time.time()),)
            )

        await self._transaction(create)

    async def _migrate(self, version: int) -> None:
        async def migrate() -> None:
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    await self._conn.execute(statement)
            await self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

        await self._transaction(migrate)
        self._schema = SCHEMA_VERSION

    async def _scalar(self, sql: str, params: Sequence[object] = ()) -> object:
        async with self._conn.execute(sql, params) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]

    @contextlib.asynccontextmanager
    async def _settled(self) -> AsyncIterator[None]:
        """Reads share the connection with the writes: one run between two statements of a
        transaction would see it half done, so it waits for the transaction to end. (Other
        processes read committed data only; `items()`, for export, is not used mid-run.)"""
        # The lock is not re-entrant: a read inside a transaction's work would wait forever.
        assert asyncio.current_task() not in self._writes, "a settled read inside a write"
        async with self._write_lock:
            yield

    # -- crawl lifecycle ------------------------------------------------------------------

    @property
    def location(self) -> str:
        return _describe(self._path)

    async def open_crawl(self, spider: str, config: str, *, fresh: bool,
                         identity: str | None = None,
                         depth_limit: int | None = None) -> RunInfo:
        self._check_writable()
        owner = await self._scalar("SELECT value FROM meta WHERE key = 'spider'")
        if owner is not None and owner != spider:
            raise SpiderMismatch(
                f"{_describe(self._path)} holds a crawl of spider '{owner}', not '{spider}'. "
                "Use another --state file; the file was left untouched."
            )
        if self._schema != SCHEMA_VERSION:
            # Only now that the crawl is known to be ours: a refused file stays untouched.
            await self._migrate(self._schema)
        reclaimed = await self._transaction(
            lambda: self._start_run(spider, config, fresh, identity, depth_limit))
        assert self._run_id is not None
        resumed = owner is not None and not fresh
        counts = await self.counts()
        self._tally = _Tally.of(counts)
        self._parking = counts.parked > 0
        return RunInfo(self._run_id, resumed, reclaimed, counts)

    async def identity(self) -> str | None:
        value = await self._scalar("SELECT value FROM meta WHERE key = 'identity'")
        return None if value is None else str(value)

    async def _start_run(self, spider: str, config: str, fresh: bool, identity: str | None,
                         depth_limit: int | None) -> int:
        """Start a run; returns how many leases of dead runs went back to the queue."""
        if fresh:
            for table in ("requests", "items", "counters", "runs"):
                await self._conn.execute(f"DELETE FROM {table}")
        await self._conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('spider', ?)", (spider,)
        )
        if identity is not None:
            await self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('identity', ?)", (identity,)
            )
        # With the identity, so that a deeper limit and its parked requests never disagree.
        cur = await self._conn.execute(_UNPARK_TO, (depth_limit,))
        if cur.rowcount > 0:
            await self._conn.execute(_ADD_COUNTER, (PARKED_COUNTER, -cur.rowcount))
        # We hold the file lock, so any run still marked running has died.
        await self._conn.execute("UPDATE runs SET status = 'crashed' WHERE status = 'running'")
        cur = await self._conn.execute(
            f"UPDATE requests SET state = {RequestState.QUEUED}, run = NULL"
            f" WHERE state = {RequestState.LEASED}"
        )
        reclaimed = cur.rowcount
        cur = await self._conn.execute(
            "INSERT INTO runs (started, pid, hostname, status, config)"
            " VALUES (?, ?, ?, 'running', ?)",
            (time.time(), os.getpid(), socket.gethostname(), config),
        )
        self._run_id = cur.lastrowid
        return reclaimed

    async def finish_run(self, status: str, stats: str | None = None) -> None:
        self._check_writable()
        if self._run_id is None:
            return
        run = self._run_id

        async def finish() -> None:
            await self._apply_pending()
            cur = await self._conn.execute(
                f"UPDATE requests SET state = {RequestState.QUEUED}, run = NULL WHERE {_LEASED}",
                (run,),
            )
            self._tally_delta.move("leased", "queued", cur.rowcount)
            await self._conn.execute(
                "UPDATE runs SET status = ?, ended = ?, stats = coalesce(?, stats) WHERE id = ?",
                (status, time.time(), stats, run),
            )

        await self._transaction(finish)
        self._run_id = None

    async def save_stats(self, stats: str) -> None:
        run = self._require_run()

        async def save() -> None:
            await self._apply_pending()  # so the figures and the rows they count agree
            await self._conn.execute("UPDATE runs SET stats = ? WHERE id = ?", (stats, run))

        await self._transaction(save)

    def tally(self) -> CrawlCounts:
        self._require_run()
        return self._tally.counts()

    # -- the frontier ---------------------------------------------------------------------

    async def add(self, requests: Sequence[NewRequest]) -> int:
        self._check_writable()

        async def insert() -> int:
            counters: Counter[str] = Counter()
            added = await self._insert_requests(requests, counters)
            await self._add_counters(counters)
            return added

        return await self._transaction(insert)

    async def _insert_requests(self, requests: Sequence[NewRequest],
                               counters: Counter[str]) -> int:
        """Queue the requests that have no row yet, and the parked ones found again; returns
        how many were queued."""
        if not requests:
            return 0
        unparked, rows = 0, _rows(requests)
        if self._parking:  # only a crawl that parked requests pays for the extra lookups
            # A row is (fp, url, priority, depth, callback, cb_kwargs, redirects, parent).
            cur = await self._conn.executemany(_UNPARK_FOUND, [(*row[2:], row[0])
                                                               for row in rows])
            unparked = max(cur.rowcount, 0)
            counters[PARKED_COUNTER] -= unparked
            self._tally_delta.parked -= unparked
        cur = await self._conn.executemany(_INSERT_REQUEST, rows)
        added = max(cur.rowcount, 0) + unparked
        self._tally_delta.queued += added
        return added

    async def _park(self, requests: Sequence[NewRequest], counters: Counter[str]) -> int:
        """Keep requests that have no row yet parked; returns how many."""
        if not requests:
            return 0
        cur = await self._conn.executemany(_INSERT_PARKED, _rows(requests))
        parked = max(cur.rowcount, 0)
        self._parking = self._parking or parked > 0
        counters[PARKED_COUNTER] += parked
        self._tally_delta.parked += parked
        return parked

    async def _add_counters(self, counters: Counter[str]) -> None:
        counts = [(name, value) for name, value in counters.items() if value]
        if counts:
            await self._conn.executemany(_ADD_COUNTER, counts)
        self._tally_delta.counters.update(counters)

    async def requeue_failed(self) -> int:
        self._check_writable()

        async def requeue() -> int:
            cur = await self._conn.execute(
                f"UPDATE requests SET state = {RequestState.QUEUED}, attempts = 0,"
                f" not_before = 0, run = NULL WHERE state = {RequestState.FAILED}"
            )
            self._tally_delta.move("failed", "queued", cur.rowcount)
            return int(cur.rowcount)

        return await self._transaction(requeue)

    async def claim(self, limit: int, now: float) -> list[LeasedRequest]:
        run = self._require_run()
        if limit <= 0:
            return []

        async def lease() -> Iterable[Any]:
            await self._apply_pending()  # outcomes ride along: one commit instead of two
            async with self._conn.execute(
                _CLAIM, {"run": run, "now": now, "limit": limit}
            ) as cur:
                rows = list(await cur.fetchall())
            self._tally_delta.move("queued", "leased", len(rows))
            return rows

        rows = await self._transaction(lease)
        leased = [LeasedRequest(*row) for row in rows]
        # RETURNING gives no order; restore the queue's.
        leased.sort(key=lambda r: (-r.priority, r.id))
        return leased

    async def next_due(self) -> float | None:
        async with self._settled():
            value = await self._scalar(
                f"SELECT min(not_before) FROM requests WHERE state = {RequestState.QUEUED}"
            )
        return None if value is None else float(value)  # type: ignore[arg-type]

    # -- outcomes, group-committed ----------------------------------------------------------

    async def record(self, outcome: Outcome) -> None:
        self._require_run()
        self._pending.append(outcome)
        self._pending_new += _found(outcome)
        # Pages of many long links must not make a batch of 512 outcomes hold gigabytes.
        if len(self._pending) >= self._batch_size or self._pending_new >= MAX_PENDING_NEW:
            await self.flush()

    async def flush(self) -> None:
        if self._readonly:
            return
        if not self._pending and self._writes:
            # A transaction under way (a claim's, another caller's flush) may hold outcomes
            # recorded before this call; one that fails gives them back to `_pending`.
            await asyncio.wait(set(self._writes))
        if self._pending:
            await self._transaction(self._apply_pending)

    async def _apply_pending(self) -> None:
        """Write every buffered outcome inside the caller's transaction."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._pending_new = 0
        self._applying.extend(batch)  # until COMMIT succeeds
        # A savepoint costs one statement a batch; without it, one outcome that cannot be
        # stored would fail the commit of all the others, again at every retry.
        await self._conn.execute("SAVEPOINT batch")
        counted = self._tally_delta.copy()
        try:
            await self._apply(batch)
        except _DATA_ERRORS:
            await self._conn.execute("ROLLBACK TO batch")
            self._tally_delta = counted  # what the rolled-back statements counted is undone
            await self._apply_each(batch)

    async def _apply_each(self, batch: list[Outcome]) -> None:
        """Apply outcomes one at a time; one that cannot be stored becomes a Failure of its
        request that says why. Only when a whole batch failed: slow, and rare."""
        for outcome in batch:
            await self._conn.execute("SAVEPOINT outcome")
            counted = self._tally_delta.copy()
            try:
                await self._apply([outcome])
            except _DATA_ERRORS as exc:
                await self._conn.execute("ROLLBACK TO outcome")
                self._tally_delta = counted
                reason = _storable(f"this request's outcome cannot be stored: {exc}")
                log.warning("request %d failed: store: %s", outcome.request_id, reason,
                            extra={"reason": f"store: {reason}"})
                await self._apply([Failure(outcome.request_id, "store", reason)])
            await self._conn.execute("RELEASE outcome")

    async def _held(self, batch: list[Outcome], run: int) -> set[int]:
        """Which of the batch's requests this run still holds a lease on."""
        ids = list({o.request_id for o in batch})
        held: set[int] = set()
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._conn.execute(
                f"SELECT id FROM requests WHERE id IN ({marks}) AND {_LEASED}", (*chunk, run)
            ) as cur:
                held.update(row[0] for row in await cur.fetchall())
        return held

    async def _apply(self, batch: list[Outcome]) -> None:
        if not batch:
            return
        run = self._require_run()
        # Fencing: only the lease holder's outcome counts, and only once.
        held = await self._held(batch, run)
        done, retries, defers, failures, releases = [], [], [], [], []
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
            elif isinstance(o, Failure):
                failures.append((f"{o.kind}: {o.error}", o.status, o.request_id, run))
            else:
                assert isinstance(o, Release)
                releases.append((o.request_id, run))
        conn = self._conn
        # Outputs first, then the done marks: all inside one transaction, so either a request
        # is done with all its outputs stored, or it is not done and stored nothing.
        if items:
            await conn.executemany("INSERT INTO items (request, data) VALUES (?, ?)", items)
        added = await self._insert_requests(new, counters)
        added += await self._park(parked, counters)  # after: a request queued here wins
        if len(new) + len(parked) > added:
            counters[DUPLICATE_COUNTER] += len(new) + len(parked) - added
        for sql, rows in ((_COMPLETE, done), (_RETRY, retries), (_DEFER, defers),
                          (_FAIL, failures), (_RELEASE, releases)):
            if rows:
                await conn.executemany(sql, rows)
        await self._add_counters(counters)
        tally = self._tally_delta
        tally.move("leased", "done", len(done))
        tally.move("leased", "failed", len(failures))
        tally.move("leased", "queued", len(retries) + len(defers) + len(releases))
        tally.items += len(items)

    # -- reading --------------------------------------------------------------------------

    async def counts(self) -> CrawlCounts:
        by_state = dict.fromkeys(RequestState, 0)
        async with self._settled():
            async with self._conn.execute(
                "SELECT state, count(*) FROM requests GROUP BY state"
            ) as cur:
                async for state, n in cur:
                    by_state[RequestState(state)] = n
            async with self._conn.execute("SELECT count(*) FROM items") as cur:
                items = (await cur.fetchone() or (0,))[0]
            async with self._conn.execute(
                "SELECT name, value FROM counters ORDER BY name"
            ) as cur:
                counters = {name: value async for name, value in cur}
        return CrawlCounts(
            queued=by_state[RequestState.QUEUED],
            leased=by_state[RequestState.LEASED],
            done=by_state[RequestState.DONE],
            failed=by_state[RequestState.FAILED],
            items=int(items or 0),
            counters=counters,
            parked=by_state[RequestState.PARKED],
        )

    async def items(self) -> AsyncGenerator[str, None]:
        async with self._conn.execute("SELECT data FROM items ORDER BY id") as cur:
            async for (data,) in cur:
                yield data

    async def runs(self) -> list[RunRecord]:
        stats = "stats" if self._schema >= 2 else "NULL"  # a schema-1 file opened to read
        async with self._settled(), self._conn.execute(
            f"SELECT id, started, ended, status, config, {stats} FROM runs ORDER BY id"
        ) as cur:
            return [RunRecord(*row) async for row in cur]

    async def breakdown(self) -> Breakdown:
        statuses: dict[int, int] = {}
        errors: dict[str, int] = {}
        async with self._settled():
            async with self._conn.execute(
                f"SELECT status, count(*) FROM requests WHERE state = {RequestState.DONE}"
                " AND status IS NOT NULL GROUP BY status ORDER BY status"
            ) as cur:
                async for status, n in cur:
                    statuses[status] = n
            # An error is stored as "kind: details"; the kind is what a table can group.
            async with self._conn.execute(
                "SELECT CASE WHEN instr(error, ':') > 0"
                " THEN substr(error, 1, instr(error, ':') - 1) ELSE error END AS kind,"
                f" count(*) FROM requests WHERE state = {RequestState.FAILED}"
                " GROUP BY kind ORDER BY count(*) DESC"
            ) as cur:
                async for kind, n in cur:
                    errors[kind or "unknown"] = n
        return Breakdown(statuses, errors)

    async def failures(self, limit: int) -> list[FailedRequest]:
        async with self._settled(), self._conn.execute(
            f"SELECT url, status, error FROM requests WHERE state = {RequestState.FAILED}"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        ) as cur:
            return [FailedRequest(*row) async for row in cur]

    async def live(self) -> bool:
        if self._lock_fd is not None:
            return True
        return await asyncio.to_thread(held, self._path)

    async def spider_name(self) -> str:
        value = await self._scalar("SELECT value FROM meta WHERE key = 'spider'")
        if value is None:
            raise NotAStateFile(f"{_describe(self._path)} holds no crawl yet")
        return str(value)

    # -- plumbing -------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._readonly:
                await self.flush()
        finally:
            async with self._write_lock:  # a shielded transaction may still be finishing
                await self._conn.close()
            unlock(self._lock_fd)
            self._lock_fd = None
            if self._source is not None:
                await asyncio.to_thread(self._source.discard)

    def _check_writable(self) -> None:
        if self._readonly:
            raise StoreError(f"{_describe(self._path)} was opened read-only")

    def _require_run(self) -> int:
        self._check_writable()
        if self._run_id is None:
            raise StoreError("no run is open: call open_crawl() first")
        return self._run_id


async def _connect(path: Path | str, *, readonly: bool, uri: bool = False,
                   shown: Path | None = None) -> aiosqlite.Connection:
    # A read-only *connection* to a WAL file would leave -wal/-shm files behind that it may
    # not delete. Our own, already validated state file is instead opened normally with
    # writes switched off, so closing it tidies up like any other connection. Only a file
    # we may not write is read through a read-only URI (see _ReadSource).
    shown = shown or Path(path)
    try:
        conn = await aiosqlite.connect(str(path), isolation_level=None, uri=uri)
    except sqlite3.Error as exc:
        raise _refusal(shown, exc, "cannot be opened") from exc
    try:
        await conn.execute("PRAGMA busy_timeout = 10000")
        if readonly:
            await conn.execute("PRAGMA query_only = ON")
        else:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            # 8 MiB of page cache: more buys no speed (`crawl bench --pages 20000`) and would
            # grow memory with the size of the frontier.
            await conn.execute("PRAGMA cache_size = -8192")
        # Rows are read as plain tuples: a state file's columns never change under us.
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise _refusal(shown, exc, "is damaged") from exc
    except BaseException:
        await conn.close()
        raise
    return conn


def _refusal(path: Path, exc: sqlite3.Error, damaged: str) -> StoreError:
    """Why SQLite could not open or read `path`: the disk or the permissions if they are to
    blame, else the file (`damaged` says how)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
        return StateFileUnavailable(f"cannot use {_describe(path)}: {disk_full(path) or exc}")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return StateFileUnavailable(f"cannot open {_describe(path)}: {exc}")
    return NotAStateFile(f"{_describe(path)} {damaged}: {exc}")


@dataclass(slots=True)
class _ReadSource:
    """How to read a state file for `crawl stats`/`export`, changing nothing.

    A file we may write is opened as usual (`uri` None). One we may not (a read-only file,
    folder or medium) is read through a read-only URI: `immutable` when there is no -wal
    (nothing is writing it), plain `mode=ro` when its -wal and -shm are there to be read. A
    -wal with no -shm beside it, which can't be created, is one SQLite cannot read in place:
    the file and its -wal are copied to a scratch folder, read there, and the copy deleted.
    """

    target: Path
    inspected: Path
    uri: str | None = None
    scratch: Path | None = None

    @classmethod
    def of(cls, path: Path) -> _ReadSource:
        if not path.is_file() or writable(path):
            return cls(path, path)
        base = f"{path.resolve().as_uri()}?mode=ro"
        wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
        if not wal.exists():
            return cls(path, path, base + "&immutable=1")
        if shm.exists() and _readable(base):
            return cls(path, path, base)
        scratch = Path(tempfile.mkdtemp(prefix="crawl-read-"))
        try:
            copy = scratch / path.name
            shutil.copyfile(path, copy)
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return cls(copy, copy, None, scratch)

    def discard(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def _readable(uri: str) -> bool:
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return True


@dataclass(slots=True)
class _Tally:
    queued: int = 0
    leased: int = 0
    done: int = 0
    failed: int = 0
    items: int = 0
    counters: Counter[str] = field(default_factory=Counter)
    parked: int = 0

    @classmethod
    def of(cls, counts: CrawlCounts) -> _Tally:
        return cls(counts.queued, counts.leased, counts.done, counts.failed, counts.items,
                   Counter(counts.counters), counts.parked)

    def copy(self) -> _Tally:
        return _Tally(self.queued, self.leased, self.done, self.failed, self.items,
                      Counter(self.counters), self.parked)

    def move(self, source: str, target: str, n: int) -> None:
        if n > 0:
            setattr(self, source, getattr(self, source) - n)
            setattr(self, target, getattr(self, target) + n)

    def merge(self, other: _Tally) -> None:
        self.queued += other.queued
        self.leased += other.leased
        self.done += other.done
        self.failed += other.failed
        self.items += other.items
        self.counters.update(other.counters)
        self.parked += other.parked

    def counts(self) -> CrawlCounts:
        return CrawlCounts(self.queued, self.leased, self.done, self.failed, self.items,
                           {name: n for name, n in sorted(self.counters.items()) if n},
                           self.parked)


def _found(outcome: Outcome) -> int:
    if isinstance(outcome, Completion):
        return len(outcome.requests) + len(outcome.parked)
    return 0


def _rows(requests: Sequence[NewRequest]) -> list[tuple[Any, ...]]:
    return [(fingerprint(r.url), r.url, r.priority, r.depth, r.callback, r.cb_kwargs,
             r.redirects, r.parent) for r in requests]


def _storable(text: str) -> str:
    """`text` with anything UTF-8 cannot hold (lone surrogates) written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a transaction's error as seen: its caller may have been cancelled meanwhile, and
    the error surfaces again at the next write anyway."""
    if not task.cancelled():
        task.exception()


def _inspection_uri(path: Path) -> str:
    """A URI that reads a file we have not validated yet without creating anything beside it.

    With no -wal file, `immutable` reads the main file alone and makes no -wal/-shm files.
    With one, its content matters (a crawl that is running, or was killed before a
    checkpoint), so the file is read as SQLite normally would, in read-only mode.
    """
    # as_uri() percent-encodes '#', '?' and '%', which would otherwise end the path.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    return uri if wal.exists() else uri + "&immutable=1"
