"""The SQLite store: one file holds the whole crawl (frontier, items, counters, runs).

Durability: WAL with synchronous=NORMAL survives a killed process (kill -9) at any moment; a
power cut may lose the last group of commits, which are then fetched again, never half-stored.
One writer at a time: a run holds an flock on the file, so every lease found at start-up
belongs to a run that is gone and goes straight back to the queue.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiosqlite

from storage.base import (
    LeasedRequest,
    NotAStateFile,
    RunInfo,
    SpiderMismatch,
)
from storage.census import ProcessRecord
from storage.files import describe, held, remove, unlock
from storage.ledger import Ledger, Tally
from storage.ledgered import LedgeredStore
from storage.sqlite import runs, schema
from storage.sqlite.opening import ReadSource, connect, inspect, open_to_write
from storage.sqlite.reads import Reader
from storage.sqlite.transactions import Transactions
from storage.sqlite.writes import Writer


class SQLiteStore(LedgeredStore):
    """Store on one SQLite file. Open with `await SQLiteStore.open(path)`."""

    _reader: Reader
    _writer: Writer
    _transactions: Transactions

    def __init__(self, path: Path, conn: aiosqlite.Connection, *, readonly: bool,
                 lock_fd: int | None, batch_size: int, version: int) -> None:
        self._path = path
        self._conn = conn
        self._readonly = readonly
        self._lock_fd = lock_fd
        self._ledger = Ledger(batch_size)
        self._transactions = Transactions(conn, path, self._ledger)
        self._writer = Writer(conn, self._ledger)
        self._reader = Reader(conn, self._transactions, version)
        self._run_id: int | None = None
        self._closed = False
        self._source: ReadSource | None = None  # how a read-only store reads its file
        # Made by this open and no crawl opened in it yet: closed so, it leaves nothing
        # behind (a spider refused at start must not leave an empty state file).
        self._made = False

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, readonly: bool = False,
                   batch_size: int = 512) -> SQLiteStore:
        """Open a state file. Read-only opens never create, lock or change anything, and
        work on read-only files, folders and media too."""
        p = Path(path)
        if readonly:
            return await cls._open_to_read(p, batch_size)
        conn, lock_fd, version, existed = await open_to_write(p)
        store = cls(p, conn, readonly=False, lock_fd=lock_fd, batch_size=batch_size,
                    version=version or schema.SCHEMA_VERSION)
        store._made = not existed
        if version is None:
            try:
                await store._transactions.run(lambda: schema.create(conn))
            except BaseException:
                # The connection's thread would keep the process alive: close what we opened.
                await store.close()
                raise
        return store

    @classmethod
    async def _open_to_read(cls, path: Path, batch_size: int) -> SQLiteStore:
        source = await asyncio.to_thread(ReadSource.of, path)
        try:
            version = await asyncio.to_thread(inspect, source.inspected, source.uri)
            if version is None:
                raise NotAStateFile(f"{describe(path)} does not exist or holds no crawl")
            conn = await connect(source.uri or source.target, readonly=True,
                                 uri=source.uri is not None, shown=path)
        except BaseException:
            source.discard()
            raise
        store = cls(path, conn, readonly=True, lock_fd=None, batch_size=batch_size,
                    version=version)
        store._source = source
        return store

    # -- crawl lifecycle ------------------------------------------------------------------

    @property
    def location(self) -> str:
        return describe(self._path)

    async def open_crawl(self, spider: str, config: str, *, fresh: bool,
                         identity: str | None = None,
                         depth_limit: int | None = None) -> RunInfo:
        self._check_writable()
        owner = await self._reader.meta("spider")
        if owner is not None and owner != spider:
            raise SpiderMismatch(
                f"{self.location} holds a crawl of spider '{owner}', not '{spider}'. "
                "Use another --state file; the file was left untouched."
            )
        version = self._reader.schema
        if version != schema.SCHEMA_VERSION:
            # Only now that the crawl is known to be ours: a refused file stays untouched.
            await self._transactions.run(lambda: schema.migrate(self._conn, version))
            self._reader.schema = schema.SCHEMA_VERSION
        run, reclaimed = await self._transactions.run(
            lambda: runs.start(self._conn, spider, config, fresh=fresh, identity=identity,
                               depth_limit=depth_limit))
        self._run_id = run
        self._made = False  # it holds a crawl now
        counts = await self.counts()
        self._ledger.tally = Tally.of(counts)
        self._writer.parking = counts.parked > 0
        return RunInfo(run, owner is not None and not fresh, reclaimed, counts)

    async def identity(self) -> str | None:
        return await self._reader.meta("identity")

    async def finish_run(self, status: str, stats: str | None = None) -> None:
        self._check_writable()
        if self._run_id is None:
            return
        run = self._run_id

        async def finish() -> None:
            await self._writer.apply_pending(run)
            released = await runs.end(self._conn, run, status, stats)
            self._ledger.delta.move("leased", "queued", released)

        await self._transactions.run(finish)
        self._run_id = None

    async def save_stats(self, stats: str) -> None:
        run = self._require_run()

        async def save() -> None:
            await self._writer.apply_pending(run)  # so the figures and their rows agree
            await self._conn.execute("UPDATE runs SET stats = ? WHERE id = ?", (stats, run))

        await self._transactions.run(save)

    # -- the frontier ---------------------------------------------------------------------

    async def _requeue_failed_rows(self) -> int:
        return await runs.requeue_failed(self._conn)

    async def claim(self, limit: int, now: float) -> list[LeasedRequest]:
        run = self._require_run()
        if limit <= 0:
            return []

        async def lease() -> list[LeasedRequest]:
            await self._writer.apply_pending(run)  # outcomes ride along: one commit, not two
            return await self._writer.lease(run, now, limit)

        return await self._transactions.run(lease)

    async def next_due(self) -> float | None:
        return await self._reader.next_due()

    # -- reading --------------------------------------------------------------------------

    async def live(self) -> bool:
        return self._lock_fd is not None or await asyncio.to_thread(held, self._path)

    async def processes(self) -> list[ProcessRecord]:
        return await self._reader.processes(live=await self.live())

    # -- plumbing -------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._readonly:
                await self.flush()
        finally:
            await self._transactions.close()
            if self._made:  # still under our lock: nobody else has it open
                await asyncio.to_thread(remove, self._path)
            unlock(self._lock_fd)
            self._lock_fd = None
            if self._source is not None:
                await asyncio.to_thread(self._source.discard)
