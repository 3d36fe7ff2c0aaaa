"""One write transaction at a time on the store's connection, and reads that wait for it.

What a failed write means is decided here: the disk or SQLite (a full disk, an I/O error)
fails the transaction as a `StoreError` that says so; a value the file cannot hold fails it
in words too (the write path isolates such values before they get this far).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from storage.base import NotAStateFile, StoreError
from storage.files import describe, disk_full
from storage.ledger import Journal
from storage.shielded import ShieldedWrites

T = TypeVar("T")

# What one outcome's own data can make a write fail with: text that is not Unicode (a lone
# surrogate), an integer too big for SQLite, a value of the wrong type or too big, a NULL.
# Unlike a full disk or an I/O error, these fail that outcome alone, not the commit.
DATA_ERRORS = (ValueError, OverflowError, sqlite3.DataError, sqlite3.IntegrityError,
               sqlite3.ProgrammingError)


class Transactions:
    def __init__(self, conn: aiosqlite.Connection, path: Path, journal: Journal) -> None:
        self._conn = conn
        self._path = path
        self._journal = journal
        self._lock = asyncio.Lock()
        self._writes = ShieldedWrites()

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` as one write transaction under the write lock, shielded (a cancelled
        caller does not cut it in half: storage/shielded.py)."""
        return await self._writes.run(self._run(work))

    async def _run(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                result = await work()
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                # Nothing of this transaction was written, and SQLite may have rolled back
                # already (a full disk does that), so only roll back what is still open.
                self._journal.aborted()
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                failure = self._failure(exc)
                if failure is None:
                    raise
                raise failure from exc
            self._journal.committed()
            return result

    def _failure(self, exc: BaseException) -> StoreError | None:
        """The storage error a failed transaction is, if the file or its data are to blame."""
        if isinstance(exc, sqlite3.Error):
            full = disk_full(self._path)
            why = f"{full} (SQLite: {exc})" if full else str(exc)
            return StoreError(f"writing {describe(self._path)} failed: {why}")
        if isinstance(exc, DATA_ERRORS):  # e.g. a spider name that is not Unicode
            return StoreError(f"cannot store this in {describe(self._path)}: "
                              f"{storable(str(exc))}")
        return None

    @contextlib.asynccontextmanager
    async def settled(self) -> AsyncIterator[None]:
        """Reads share the connection with the writes: one run between two statements of a
        transaction would see it half done, so it waits for the transaction to end. (Other
        processes read committed data only; `items()`, for export, is not used mid-run.)"""
        # The lock is not re-entrant: a read inside a transaction's work would wait forever.
        assert not self._writes.inside(), "a settled read inside a write"
        async with self._lock, self.reading():
            yield

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """A read that SQLite fails (a damaged page, a missing table) is the file's fault:
        the store refuses it in words, never with a bare sqlite3 error."""
        try:
            yield
        except sqlite3.Error as exc:
            raise NotAStateFile(f"reading {describe(self._path)} failed: {exc} (the file is "
                                "damaged, or was changed by something else)") from exc

    async def drain(self) -> None:
        """Wait for the transactions under way to end (however they end)."""
        await self._writes.drain()

    async def close(self) -> None:
        async with self._lock:  # a shielded transaction may still be finishing
            await self._conn.close()


def storable(text: str) -> str:
    """`text` with anything UTF-8 cannot hold (lone surrogates) written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")

