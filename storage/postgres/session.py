"""The store's one connection to PostgreSQL: connecting (a database out of reach at the start
is a clear refusal), one transaction at a time (asyncpg runs one statement at a time on a
connection, and the ledger's group commit wants it so anyway), reads that wait for it, and
what a failure means, in words that never hold the URL's password.

A connection lost mid-crawl (the server restarted, the network cut) is not the end: the
session connects again with backoff for up to `?reconnect=` seconds, lets the store set the
new connection up (`revive`: its run's lock, its leases as the database now has them), and
runs the interrupted transaction or read again. Running a write again is safe: the ledger
gives its outcomes back, and an outcome the lost transaction had already committed is
fenced out the second time (its request is no longer leased)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg

from storage.base import DatabaseUnavailable, StoreError
from storage.ledger import Journal
from storage.locations import Location
from storage.shielded import ShieldedWrites

T = TypeVar("T")
CONNECT_TIMEOUT = 10.0
# A statement with no answer for this long is a connection lost (a network cut leaves a
# socket silent, not closed): it is dropped and made again.
COMMAND_TIMEOUT = 60.0
FIRST_WAIT, MOST_WAIT = 0.2, 5.0  # seconds between two attempts to connect again
log = logging.getLogger("storage")

# What one outcome's own data can make a write fail with (text PostgreSQL cannot hold, a
# NUL or a lone surrogate; a number out of range): that outcome fails alone.
DATA_ERRORS = (ValueError, OverflowError, asyncpg.DataError,
               asyncpg.IntegrityConstraintViolationError)
# What losing the server looks like.
LOST = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
        TimeoutError)
# A transaction the server chose to abort (a deadlock, a serialization failure): run again.
CONFLICT = (asyncpg.TransactionRollbackError,)


async def connect(location: Location, *, readonly: bool) -> asyncpg.Connection:
    settings = {"application_name": f"crawler on {socket.gethostname()}",
                # A transaction left open would pin every table's dead rows (vacuum), and
                # one of a process gone mid-commit (cut off, stopped) holds the crawl's item
                # lock: every other process's commits, and so its renewals, wait on it. Ours
                # send their statements back to back: idle for long, the client is gone.
                "idle_in_transaction_session_timeout": f"{idle_limit(location):g}s"}
    if readonly:
        settings["default_transaction_read_only"] = "on"
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            location.dsn, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT,
            server_settings=settings)
    except (*LOST, asyncpg.PostgresError, ValueError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {location.shown}: {location.redact(_words(exc))}") from None
    return conn


def idle_limit(location: Location) -> float:
    """Seconds a transaction may wait on its client: well within a lease (the other
    processes' renewals may be waiting behind it), never under 5 s (a busy client)."""
    return min(60.0, max(5.0, location.lease / 4))


def _words(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return f"no answer in {CONNECT_TIMEOUT:g} s"
    return text


Revive = Callable[[asyncpg.Connection], Awaitable[None]]


class Session:
    def __init__(self, conn: asyncpg.Connection, location: Location, journal: Journal,
                 shown: str, *, readonly: bool = False) -> None:
        self.conn = conn
        self._location = location
        self._journal = journal
        self._readonly = readonly
        self.shown = shown
        self.revive: list[Revive] = []
        """Run on each new connection, in order, before the interrupted work runs again."""
        self.reconnects = 0
        self.lost_pid = 0
        """The server process of the connection last lost (it may outlive a network cut)."""
        self._lock = asyncio.Lock()
        self._writes = ShieldedWrites()
        self._closing = False

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` as one transaction, shielded (a cancelled caller does not cut it in
        half: storage/shielded.py)."""
        return await self._writes.run(self._run(work))

    async def _run(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            lost_at: float | None = None
            while True:
                transaction, xid, worked = None, None, False
                try:
                    transaction = self.conn.transaction()
                    await transaction.start()
                    # Its id: if the line breaks at COMMIT, the server says how it ended.
                    xid = await self.conn.fetchval("SELECT txid_current()")
                    result = await work()
                    worked = True
                    await transaction.commit()
                except BaseException as exc:
                    with contextlib.suppress(Exception):
                        if transaction is not None and not self.conn.is_closed():
                            await transaction.rollback()
                    if isinstance(exc, CONFLICT):
                        self._journal.aborted()
                        continue  # the server aborted it to let another through: again
                    try:
                        lost_at = await self._recover(exc, "writing", lost_at)
                    except BaseException:
                        self._journal.aborted()
                        raise
                    if worked and await self._went_through(xid):
                        self._journal.committed()  # the COMMIT did, its reply was lost
                        return result
                    self._journal.aborted()
                    continue
                self._journal.committed()
                return result

    async def _went_through(self, xid: int | None) -> bool:
        """Whether transaction `xid`, whose COMMIT was sent as the connection broke, did."""
        if xid is None:
            return False
        try:
            status = await self.conn.fetchval("SELECT txid_status($1)", xid)
        except (*LOST, asyncpg.PostgresError):
            return False  # run again: an outcome stored already is fenced the second time
        return bool(status == "committed")

    async def read(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`work(connection)`, once no transaction is under way; run again on a new
        connection if this one is lost; errors in words."""
        assert not self._writes.inside(), "a read inside a write"
        async with self._lock:
            lost_at: float | None = None
            while True:
                try:
                    return await work(self.conn)
                except Exception as exc:
                    lost_at = await self._recover(exc, "reading", lost_at)

    async def _recover(self, exc: BaseException, doing: str, lost_at: float | None) -> float:
        """After `exc`: a new connection if it means the old one is lost (returns when the
        loss began), else the error it is, raised."""
        failure = self.failure(exc, doing)
        if failure is None:
            raise exc
        if not self._lost(exc):
            raise failure from exc
        lost_at = time.monotonic() if lost_at is None else lost_at
        await self._reconnect(exc, lost_at)
        return lost_at

    def _lost(self, exc: BaseException) -> bool:
        if isinstance(exc, DATA_ERRORS) or self._closing:
            return False
        return isinstance(exc, LOST) or self.conn.is_closed()

    async def _reconnect(self, exc: BaseException, lost_at: float) -> None:
        """Connect again, with backoff, until `?reconnect=` seconds after the loss."""
        patience = self._location.reconnect
        log.warning("lost the connection to %s (%s); connecting again for up to %g s",
                    self.shown, self._location.redact(_words(exc)), patience)
        with contextlib.suppress(Exception):
            self.lost_pid = self.conn.get_server_pid()
        self.conn.terminate()
        wait = FIRST_WAIT
        while True:
            left = lost_at + patience - time.monotonic()
            if left <= 0:
                raise StoreError(
                    f"lost the connection to {self.shown} and could not connect again in "
                    f"{patience:g} s: {self._location.redact(_words(exc))}") from None
            await asyncio.sleep(min(wait, left))
            wait = min(wait * 2, MOST_WAIT)
            try:
                conn = await connect(self._location, readonly=self._readonly)
            except DatabaseUnavailable as refused:
                exc = refused
                continue
            try:
                for revive in self.revive:
                    await revive(conn)
            except (*LOST, asyncpg.PostgresError) as again:
                conn.terminate()
                exc = again
                continue
            self.conn = conn
            self.reconnects += 1
            log.warning("connected to %s again after %.1f s", self.shown,
                        time.monotonic() - lost_at)
            return

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
        """The connection, once no transaction is under way; errors in words (not run
        again: for opening, where a lost server is a refusal)."""
        assert not self._writes.inside(), "a read inside a write"
        async with self._lock:
            try:
                yield self.conn
            except Exception as exc:
                failure = self.failure(exc, "reading")
                if failure is None:
                    raise
                raise failure from exc

    async def drain(self) -> None:
        await self._writes.drain()

    async def close(self) -> None:
        self._closing = True
        async with self._lock:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 5)
            if not self.conn.is_closed():
                self.conn.terminate()

