"""The PostgreSQL store: a crawl is a schema of its own in a database many crawls share.

Semantics are the SQLite store's, request for request (the contract tests run on both):
outcomes group-committed, each all-or-nothing and fenced by its lease; dedup by fingerprint;
items in commit order. Many processes may run one crawl at once (`shared`): each is a run
row with a heartbeat (`last_seen`), leases hosts and claims only their requests (hosts.py),
so politeness per host holds across all of them; a killed one's hosts and requests go to
the others once its leases run out (`?lease=SECONDS` in the URL, 30 by default).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

import asyncpg

from storage.base import (
    LeasedRequest,
    NotAStateFile,
    RunInfo,
    SpiderMismatch,
    StateLocked,
)
from storage.ledger import Ledger, Tally
from storage.ledgered import LedgeredStore
from storage.locations import Location, crawl_of, quoted
from storage.postgres import runs, schema
from storage.postgres.reads import Reader
from storage.postgres.session import Session, connect
from storage.postgres.sharing import Sharing
from storage.postgres.writes import Writer
from storage.sharable import Gaps


class PostgresStore(LedgeredStore):
    """Open with `await PostgresStore.open("postgresql://user@host/db?crawl=NAME")`."""

    _reader: Reader
    _writer: Writer
    _transactions: Session

    def __init__(self, session: Session, schema_name: str, *, readonly: bool,
                 location: Location, version: int, ledger: Ledger) -> None:
        self._transactions = session
        self._schema = schema_name
        self._readonly = readonly
        self._ledger = ledger
        self._writer = Writer(session, ledger, schema_name)
        self.sharing = Sharing(session, self._writer, ledger, schema_name,
                               lease=location.lease, renews=location.renew)
        session.revive.append(self._revive)
        self._hosts = self.sharing.leases
        self._reader = Reader(session)
        self._version = version
        self._run_id: int | None = None
        self._token: uuid.UUID | None = None
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, readonly: bool = False,
                   batch_size: int = 512) -> PostgresStore:
        """Connect and find (or, to write, create) the crawl's schema. Read-only opens
        create, lock and change nothing."""
        location = Location.parse(url)
        conn = await connect(location, readonly=readonly)
        ledger = Ledger(batch_size)
        session = Session(conn, location, ledger, location.shown, readonly=readonly)
        try:
            async with session.reading():
                store = await cls._prepare(session, location, readonly, batch_size, ledger)
        except BaseException:
            await session.close()
            raise
        return store

    @classmethod
    async def _prepare(cls, session: Session, location: Location, readonly: bool,
                       batch_size: int, ledger: Ledger) -> PostgresStore:
        conn = session.conn
        name = await runs.choose(conn, location, readonly=readonly)
        session.shown = location.with_crawl(crawl_of(name))
        await conn.execute("SELECT set_config('search_path', $1, false)", quoted(name))
        found = await runs.version(conn, name, session.shown)
        if found is None:
            if readonly:
                raise NotAStateFile(f"{session.shown} holds no crawl")
            async with conn.transaction():
                await runs.create(conn, name)
        return cls(session, name, readonly=readonly, location=location,
                   version=found or schema.SCHEMA_VERSION, ledger=ledger)

    # -- crawl lifecycle ------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self._transactions.shown

    @property
    def shared(self) -> bool:
        return True

    @property
    def lease(self) -> float:
        return self._hosts.lease

    def watch(self, lost: Callable[[set[str]], None]) -> None:
        self.sharing.watch(lost)

    def abandon(self) -> None:
        if self._run_id is not None:
            self.sharing.abandon()

    @property
    def _conn(self) -> asyncpg.Connection:
        return self._transactions.conn  # the current one: a lost connection is made again

    async def _revive(self, conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT set_config('search_path', $1, false)", quoted(self._schema))
        if self._run_id is not None:
            await self.sharing.revive(conn, self._run_id)

    def plan(self, hosts: int, delay: float = 0.0) -> None:
        self._hosts.want, self._hosts.delay = max(1, hosts), max(0.0, delay)


    async def open_crawl(self, spider: str, config: str, *, fresh: bool,
                         identity: str | None = None,
                         depth_limit: int | None = None) -> RunInfo:
        self._check_writable()
        owner = await self._reader.meta("spider")
        if owner is not None and owner != spider:
            raise SpiderMismatch(
                f"{self.location} holds a crawl of spider '{owner}', not '{spider}'. "
                "Name another crawl (?crawl=NAME); this one was left untouched.")
        if self._version != schema.SCHEMA_VERSION:
            found = self._version
            await self._transactions.run(lambda: runs.migrate(self._conn, found))
            self._version = schema.SCHEMA_VERSION
        if fresh and await self._transactions.read(
                lambda conn: runs.maybe_alive(conn, self._schema, self._hosts.lease)):
            raise StateLocked(f"another crawl process is running on {self.location}; "
                              "--fresh would empty the crawl under it: stop it first")
        reconnects = self._transactions.reconnects
        run, token, reclaimed = await self._transactions.run(
            lambda: runs.start(self._conn, spider, config, fresh=fresh, identity=identity,
                               depth_limit=depth_limit, schema_name=self._schema))
        self._run_id, self._token = run, token
        if self._transactions.reconnects != reconnects:
            # Its COMMIT went through as the line broke: the run's lock went with the old
            # connection, and the new one's revive did not know the run yet.
            await self._transactions.read(lambda conn: self.sharing.revive(conn, run))
        runs.OPEN.add((self._schema, run))
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
            released = await runs.end(self._conn, run, status, stats, self._hosts.delay)
            self._ledger.delta.move("leased", "queued", released)

        await self._transactions.run(finish)
        runs.OPEN.discard((self._schema, run))
        self._run_id = None
        self._hosts.held.clear()

    async def save_stats(self, stats: str) -> None:
        run = self._require_run()

        async def save() -> None:
            await self._writer.apply_pending(run)
            await self._conn.execute(
                "UPDATE runs SET stats = $2, last_seen = now() WHERE id = $1", run, stats)

        await self._transactions.run(save)

    # -- the frontier ---------------------------------------------------------------------

    async def _requeue_failed_rows(self) -> int:
        return await runs.requeue_failed(self._conn)

    async def claim(self, limit: int, now: float) -> list[LeasedRequest]:
        run = self._require_run()
        return [] if limit <= 0 else await self.sharing.claim(run, limit, now)

    async def next_due(self) -> float | None:
        return await self.sharing.next_due(self._require_run())

    async def renew(self) -> set[str]:
        return await self.sharing.renew(self._require_run())

    async def hand_back(self, gaps: Gaps, *, everything: bool = False,
                        delays: Mapping[str, float] | None = None) -> None:
        await self.sharing.hand_back(self._require_run(), gaps, delays or {}, everything)

    # -- reading --------------------------------------------------------------------------

    async def live(self) -> bool:
        return self._run_id is not None or await self.sharing.others_live(None)

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
            if self._run_id is not None:  # not finished: its lock went with the connection
                runs.OPEN.discard((self._schema, self._run_id))

__all__ = ["PostgresStore"]
