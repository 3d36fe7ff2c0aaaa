"""What the PostgreSQL store does as one of many processes on a crawl, over its session:
claims through host leases (hosts.py), what is due for this run, renewals, hand-backs, who
else is alive, and setting a new connection straight after the old one was lost."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import asyncpg

from storage.base import LeasedRequest, RequestState
from storage.ledger import Ledger
from storage.postgres import runs
from storage.postgres.hosts import HostLeases, plain
from storage.postgres.session import Session
from storage.postgres.writes import Writer, delay
from storage.sharable import Gaps

T = TypeVar("T")
log = logging.getLogger("storage")
POLL = 0.5  # seconds between two looks at a crawl whose work other processes hold now

# The earliest queued request this run could lease: of a host free, run out or its own.
# In due order (the requests_due index): the first that qualifies ends the look.
_NEXT_DUE = (
    "SELECT extract(epoch FROM greatest(r.not_before, now() - interval '1000 years')"
    f" - now())::float8 FROM requests r LEFT JOIN hosts h ON h.host = r.host"
    f" WHERE r.state = {RequestState.QUEUED} AND (h.lease_token IS NULL"
    " OR h.lease_until < now() OR h.lease_run = $1) ORDER BY r.not_before LIMIT 1")
_OTHERS_BUSY = (f"SELECT EXISTS (SELECT 1 FROM requests WHERE state IN ({RequestState.QUEUED},"
                f" {RequestState.LEASED}) AND (run IS DISTINCT FROM $1))")
_SEEN = "UPDATE runs SET last_seen = now() WHERE id = $1"
# Requests leased to this run that it does not know it holds (a claim whose commit went
# through as the connection broke, or work it abandoned): back to the queue.
_UNKNOWN = (f"UPDATE requests SET state = {RequestState.QUEUED}, run = NULL, lease_token = NULL"
            f" WHERE state = {RequestState.LEASED} AND run = $1"
            " AND NOT (id = ANY($2::bigint[]))")
_UNSEEN = (f"UPDATE requests SET state = {RequestState.QUEUED}, run = NULL, lease_token = NULL"
           f" WHERE state = {RequestState.LEASED} AND run = $1 AND id = ANY($2::bigint[])")
# Hosts this run lets go of without a word on their delay: whoever takes one keeps the
# host's delay first, as from a process that died (hosts.py).
_LET_GO = ("UPDATE hosts SET lease_until = '-infinity' WHERE lease_run = $1"
           " AND lease_token = ANY($2::uuid[])")
# Only one another process marked crashed: a run that ended (its finish's COMMIT went
# through as the connection broke) stays as it ended.
_REVIVE_RUN = ("UPDATE runs SET status = 'running', ended = NULL, last_seen = now()"
               " WHERE id = $1 AND status = 'crashed' RETURNING id")


class Sharing:
    def __init__(self, session: Session, writer: Writer, ledger: Ledger, schema_name: str, *,
                 lease: float, renews: bool) -> None:
        self._session = session
        self._writer = writer
        self._ledger = ledger
        self._schema = schema_name
        self.renews = renews
        self.leases = HostLeases(session, lease)
        self._watchers: list[Callable[[set[str]], None]] = []
        # The leases abandon() gave up: let go of in the database with the next statement.
        self._letting_go: set[uuid.UUID] = set()

    @property
    def fenced(self) -> int:
        """Outcomes of this run not stored: their lease had been taken over."""
        return self._writer.fenced

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self.leases.held)

    def watch(self, lost: Callable[[set[str]], None]) -> None:
        self._watchers.append(lost)

    def _lost(self, hosts: set[str]) -> set[str]:
        """Tell the watchers; the hosts as the interface names them (an IPv6 address without
        its brackets, as the crawler's frontier has it)."""
        named = {plain(host) for host in hosts}
        if named:
            for watcher in self._watchers:
                watcher(named)
        return named

    async def claim(self, run: int, limit: int, now: float) -> list[LeasedRequest]:
        async def lease() -> list[tuple[str, LeasedRequest]]:
            taken: dict[str, float] = {}
            try:
                await self._writer.apply_pending(run)  # outcomes ride along: one commit
                taken = await self.leases.take(run)
                rows = await self.leases.claim(run, delay(now), limit)
            except BaseException:
                # Rolled back (a deadlock, a lost connection): the hosts this try took are
                # not ours; held, they would take the room of real ones under a dead token.
                self.leases.drop(taken)
                raise
            leased = self._writer.leased(rows, self.leases.waits)
            # Ours if this commits: known to a revive while the COMMIT is in doubt. Those
            # of an earlier try stay known: it may have committed unbeknown to us.
            self._writer.tentative |= {request.id for _, request in leased}
            return leased

        try:
            claimed = await self._run(run, lease)
            # An earlier try whose COMMIT's fate could not be learnt: what it leased, if it
            # went through, is leased to us and held by nobody.
            doubt = self._writer.tentative - {r.id for _, r in claimed} - self._writer.out
            if doubt:
                await self._session.run(
                    lambda: self._session.conn.execute(_UNSEEN, run, list(doubt)))
        finally:
            self._writer.tentative = set()
        # Hosts abandoned while the claim was under way are not ours to send to: what was
        # claimed of them goes back with the next statement (it is not in `out`). Only
        # now, committed, are the requests the run's (a try rolled back leaves its ids
        # unknown, and any of them leased to us goes back: revive).
        kept = [request for host, request in claimed if host in self.leases.held]
        self._writer.out.update(request.id for request in kept)
        return kept

    async def next_due(self, run: int) -> float | None:
        async def look(conn: asyncpg.Connection) -> tuple[float | None, bool]:
            due = await conn.fetchval(_NEXT_DUE, run)
            return due, due is not None or bool(await conn.fetchval(_OTHERS_BUSY, run))

        due, busy = await self._session.read(look)
        if not busy:
            return None
        # Only others' leases left: their outcomes may add work (a killed one's run out).
        return time.time() + (POLL if due is None else due)

    async def renew(self, run: int) -> set[str]:
        if not self.renews:  # the test-only knob: leases run out, the run still lives
            await self._session.run(lambda: self._session.conn.execute(_SEEN, run))
            return set()

        lost = await self._run(run, lambda: self.leases.renew(run))
        if lost:
            log.warning("lost the lease of %d host(s) to another process: %s", len(lost),
                        ", ".join(sorted(lost)[:5]))
        return self._lost(lost)

    def abandon(self) -> None:
        lost = set(self.leases.held)
        self._letting_go.update(self.leases.held.values())
        self.leases.held.clear()
        self.leases.waits.clear()
        self._writer.out.clear()  # none of it is ours to finish now (in flight: fenced)
        if lost:
            log.warning("stopped work on %d host(s): their leases could not be renewed in "
                        "time and may be another process's now", len(lost))
        self._lost(lost)

    async def _run(self, run: int, work: Callable[[], Awaitable[T]]) -> T:
        """`work` as one transaction that first lets go of what `abandon()` gave up."""
        tokens = list(self._letting_go)

        async def whole() -> T:
            if tokens:  # counted with the transaction: it may be rolled back and run again
                requeued = await self._let_go(self._session.conn, run, tokens)
                self._ledger.delta.move("leased", "queued", requeued)
            return await work()

        result = await self._session.run(whole)
        self._letting_go.difference_update(tokens)
        return result

    async def _let_go(self, conn: asyncpg.Connection, run: int,
                      tokens: list[uuid.UUID]) -> int:
        """Returns how many requests went back to the queue (for the caller to count once
        its transaction commits)."""
        await conn.execute(_LET_GO, run, tokens)
        # Known: what it was handed, what it is storing (the outcomes waiting, and those
        # of a commit in doubt), and what a claim in doubt took.
        known = (self._writer.out | self._writer.tentative
                 | {o.request_id for o in (*self._ledger.pending, *self._ledger.applying)})
        requeued = await conn.execute(_UNKNOWN, run, list(known))
        return int(requeued.rsplit(" ", 1)[-1])

    async def revive(self, conn: asyncpg.Connection, run: int) -> None:
        """Set a new connection straight, the old one lost: this run's lock taken again, and
        its leases and requests as the database has them now. Another process may have
        found the run gone meanwhile (it let go of its lock) and taken its hosts and
        requests back: the run lives on, holding only what is still its own."""
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):  # then we wait for it
            await conn.execute(runs.END_STALE, self._schema, run, self._session.lost_pid)
        await conn.execute(runs.LOCK_RUN, self._schema, run)
        tokens = list(self._letting_go)
        async with conn.transaction():
            if await conn.fetchval(_REVIVE_RUN, run) is not None:
                # Taken for gone by a process that started meanwhile: its requests went
                # back; its hosts go now, the next holder keeping their delay first.
                await conn.execute(runs.LET_GO_OF_RUNS, [run])
                mine = {}
            else:
                mine = {host: token for host, token in await self.leases.mine(conn, run)
                        if token not in self._letting_go}
            requeued = await self._let_go(conn, run, tokens)
        self._ledger.tally.move("leased", "queued", requeued)  # committed
        self._letting_go.difference_update(tokens)
        held = self.leases.held
        lost = {host for host, token in held.items() if mine.get(host) != token}
        held.clear()
        held.update(mine)
        if lost:
            log.warning("%d host(s) went to another process while the connection was lost",
                        len(lost))
        self._lost(lost)

    async def hand_back(self, run: int, gaps: Gaps,
                        delays: Mapping[str, float], everything: bool) -> None:
        async def give() -> None:
            await self._writer.apply_pending(run)  # what is leased must be seen as ended
            if delays:
                await self.leases.keep_delays(run, delays)
            await self.leases.hand_back(run, gaps, everything=everything)
            if everything:
                self._writer.out.clear()

        await self._run(run, give)

    async def others_live(self, run: int | None) -> bool:
        """Whether a run of another process is alive (holds its run's lock)."""
        return bool(await self._session.read(
            lambda conn: conn.fetchval(runs.LIVE, self._schema, run)))
