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
from typing import Any, TypeVar

import aiosqlite

from storage.base import NotAStateFile, StoreError
from storage.files import describe, disk_full
from storage.ledger import Journal

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
        self._running: set[asyncio.Future[Any]] = set()  # started, not ended

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` as one write transaction under the write lock.

        Shielded: a caller cancelled mid-way (a worker at the end of a stop) must not leave
        the connection between BEGIN and COMMIT. The transaction finishes on its own.
        """
        task = asyncio.ensure_future(self._run(work))
        task.add_done_callback(_retrieve)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

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
        assert asyncio.current_task() not in self._running, "a settled read inside a write"
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
        if self._running:
            await asyncio.wait(set(self._running))

    async def close(self) -> None:
        async with self._lock:  # a shielded transaction may still be finishing
            await self._conn.close()


def storable(text: str) -> str:
    """`text` with anything UTF-8 cannot hold (lone surrogates) written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a transaction's error as seen: its caller may have been cancelled meanwhile, and
    the error surfaces again at the next write anyway."""
    if not task.cancelled():
        task.exception()
