"""The store's one connection to PostgreSQL: connecting (a database out of reach is a clear
refusal), one transaction at a time (asyncpg runs one statement at a time on a connection,
and the ledger's group commit wants it so anyway), reads that wait for it, and what a
failure means, in words that never hold the URL's password."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from storage.base import DatabaseUnavailable, StoreError
from storage.ledger import Journal
from storage.locations import Location

T = TypeVar("T")
CONNECT_TIMEOUT = 10.0

# What one outcome's own data can make a write fail with (text PostgreSQL cannot hold, a
# NUL or a lone surrogate; a number out of range): that outcome fails alone.
DATA_ERRORS = (ValueError, OverflowError, asyncpg.DataError,
               asyncpg.IntegrityConstraintViolationError)
# What losing the server looks like.
LOST = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, TimeoutError)


async def connect(location: Location, *, readonly: bool) -> asyncpg.Connection:
    settings = {"application_name": f"crawler on {socket.gethostname()}",
                # A transaction left open would pin every table's dead rows (vacuum).
                "idle_in_transaction_session_timeout": "60s"}
    if readonly:
        settings["default_transaction_read_only"] = "on"
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            location.dsn, timeout=CONNECT_TIMEOUT, server_settings=settings)
    except (*LOST, asyncpg.PostgresError, ValueError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {location.shown}: {location.redact(_words(exc))}") from None
    return conn


def _words(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return f"no answer in {CONNECT_TIMEOUT:g} s"
    return text


class Session:
    def __init__(self, conn: asyncpg.Connection, location: Location, journal: Journal,
                 shown: str) -> None:
        self.conn = conn
        self._location = location
        self._journal = journal
        self.shown = shown
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Future[Any]] = set()

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` as one transaction. Shielded, as SQLite's: a cancelled caller must not
        leave the connection in the middle of one."""
        task = asyncio.ensure_future(self._run(work))
        task.add_done_callback(_retrieve)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def _run(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            transaction = self.conn.transaction()
            try:
                await transaction.start()
                result = await work()
                await transaction.commit()
            except BaseException as exc:
                self._journal.aborted()
                with contextlib.suppress(Exception):
                    if not self.conn.is_closed():
                        await transaction.rollback()
                failure = self.failure(exc, "writing")
                if failure is None:
                    raise
                raise failure from exc
            self._journal.committed()
            return result

    def failure(self, exc: BaseException, doing: str) -> StoreError | None:
        """The storage error a failed statement is, in words without the password."""
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, DATA_ERRORS):
            return StoreError(f"cannot store this in {self.shown}: "
                              f"{self._location.redact(str(exc))}")
        if isinstance(exc, (*LOST, asyncpg.PostgresError)):
            return StoreError(f"{doing} {self.shown} failed: "
                              f"{self._location.redact(_words(exc))}")
        return None

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection, once no transaction is under way; errors in words."""
        assert asyncio.current_task() not in self._running, "a read inside a write"
        async with self._lock:
            try:
                yield self.conn
            except Exception as exc:
                failure = self.failure(exc, "reading")
                if failure is None:
                    raise
                raise failure from exc

    async def drain(self) -> None:
        if self._running:
            await asyncio.wait(set(self._running))

    async def close(self) -> None:
        async with self._lock:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 5)
            if not self.conn.is_closed():
                self.conn.terminate()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
