"""Host leases: how many processes share one crawl and stay polite per host all together.

A process leases a host (a new token, `lease_until` on the database's clock) and, while it
holds it, is the only one to fetch from it: its own per-host limits and delays are then the
host's global ones. It claims requests of the hosts it holds only, stamping each with the
host's token; it renews its leases every lease / 3 and hands a host back, with what is left
of its politeness delay as the host's gate (`next_allowed`), once it has nothing for it.

A lease that ran out (its process killed, or cut off for longer than its lease) is taken
over by the next process that leases hosts: in the same statement, the requests leased
under the old token go back in the queue. An outcome is stored only while its request is
still leased to the run that claims it (writes.py), so the old holder's late outcome is
fenced out: stored nothing of.

Runs inside a transaction its caller holds; every time is the database's `now()`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import asyncpg

from storage.base import RequestState
from storage.postgres.session import Session
from storage.sharable import Gaps

_QUEUED, _LEASED = int(RequestState.QUEUED), int(RequestState.LEASED)
_SECS = "make_interval(secs => $3)"

# Hosts not held with a request due, or whose lease ran out (their leased requests are
# reset), longest-waiting gate first.
# Locked rows are another process's choice at this moment: skipped, not waited for.
_TAKE = f"""
WITH pick AS (
    SELECT h.host, h.lease_token AS old FROM hosts h
    WHERE NOT h.parked AND (h.lease_until < now() OR h.lease_token IS NULL
      AND EXISTS (SELECT 1 FROM requests r WHERE r.host = h.host AND r.state = {_QUEUED}
                  AND r.not_before <= now()))
    ORDER BY h.next_allowed LIMIT $2 FOR UPDATE SKIP LOCKED),
reset AS (
    UPDATE requests r SET state = {_QUEUED}, run = NULL, lease_token = NULL
    FROM pick WHERE pick.old IS NOT NULL AND r.state = {_LEASED} AND r.host = pick.host
      AND r.lease_token = pick.old
    RETURNING r.id),
taken AS (
    UPDATE hosts h SET lease_run = $1, lease_token = gen_random_uuid(),
                       lease_until = now() + {_SECS},
                       next_allowed = CASE WHEN pick.old IS NULL THEN h.next_allowed
                           ELSE greatest(h.next_allowed, now() + greatest(h.delay,
                                         make_interval(secs => $4))) END
    FROM pick WHERE h.host = pick.host
    RETURNING h.host, h.lease_token,
              CASE WHEN h.next_allowed > now()
                   THEN extract(epoch FROM h.next_allowed - now())::float8 ELSE 0 END AS wait)
SELECT host, lease_token, wait, (SELECT count(*) FROM reset) AS reset FROM taken
"""

# The due requests of the hosts this run holds (locked against a takeover meanwhile), each
# stamped with its host's token; a host's share is capped by the limit too.
_CLAIM = f"""
WITH held AS (
    SELECT host, lease_token FROM hosts
    WHERE lease_run = $1 AND lease_token = ANY($4::uuid[]) AND lease_until > now()
    FOR SHARE),
pick AS (
    SELECT c.id, c.priority, held.lease_token FROM held CROSS JOIN LATERAL (
        SELECT r.id, r.priority FROM requests r
        WHERE r.host = held.host AND r.state = {_QUEUED}
          AND r.not_before <= now() + make_interval(secs => $2)
        ORDER BY r.priority DESC, r.id LIMIT $3 FOR UPDATE SKIP LOCKED) c
    ORDER BY c.priority DESC, c.id LIMIT $3)
UPDATE requests r SET state = {_LEASED}, run = $1, lease_token = pick.lease_token
FROM pick WHERE r.id = pick.id
RETURNING r.id, r.url, r.callback, r.cb_kwargs, r.priority, r.depth, r.redirects, r.attempts,
          r.method, r.spec, r.body, r.host
"""

# A host taken from a holder that is gone: it may have sent a request just now, so the gate
# opens after the host's delay (as the holder last said it, or the crawl's, the longer).

_DELAYS = ("UPDATE hosts h SET delay = make_interval(secs => d.delay)"
           " FROM unnest($2::text[], $3::float8[]) AS d(host, delay)"
           " WHERE h.host = d.host AND h.lease_run = $1")

_RENEW = ("UPDATE hosts SET lease_until = now() + make_interval(secs => $3)"
          " WHERE lease_run = $1 AND lease_token = ANY($2::uuid[]) RETURNING host")

# Nothing of it leased (in flight or queued in the process) and nothing due: the host goes
# back, its gate pushed to what is left of the holder's delay.
_IDLE = (f" AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.state = {_LEASED}"
         " AND r.host = h.host AND r.lease_token = h.lease_token)"
         f" AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.state = {_QUEUED}"
         " AND r.host = h.host AND r.not_before <= now())")
_HAND_BACK = (
    "UPDATE hosts h SET lease_run = NULL, lease_token = NULL, lease_until = NULL,"
    " next_allowed = greatest(h.next_allowed, now() + make_interval(secs =>"
    " coalesce(g.gap, 0)))"
    " FROM (SELECT host FROM hosts WHERE lease_run = $1 AND lease_token = ANY($2::uuid[])) mine"
    " LEFT JOIN unnest($3::text[], $4::float8[]) AS g(host, gap) ON g.host = mine.host"
    " WHERE h.host = mine.host AND h.lease_run = $1{idle} RETURNING h.host")
_REQUEUE_HELD = (f"UPDATE requests SET state = {_QUEUED}, run = NULL, lease_token = NULL"
                 f" WHERE state = {_LEASED} AND run = $1")


def plain(host: str) -> str:
    """A host name as both sides spell it: the database keeps an IPv6 address bracketed."""
    return host.removeprefix("[").removesuffix("]")


class HostLeases:
    """This run's host leases: host -> token, as the database last confirmed them."""

    def __init__(self, session: Session, lease: float, *, want: int = 16) -> None:
        self._session = session
        self.lease = lease
        self.want = want  # hosts to hold at most (the engine's workers / per-host limit, x2)
        self.delay = 0.0  # the crawl's least delay: kept after a takeover
        self.held: dict[str, uuid.UUID] = {}
        self.waits: dict[str, float] = {}  # new hosts' gate waits, until a claim hands one out
        self.reclaimed = 0  # requests of expired leases this run put back in the queue

    @property
    def _conn(self) -> asyncpg.Connection:
        return self._session.conn  # the current one: a lost connection is made again

    def tokens(self) -> list[uuid.UUID]:
        return list(self.held.values())

    async def take(self, run: int) -> dict[str, float]:
        """Lease hosts up to `want`; returns each new one's wait until its gate opens."""
        free = self.want - len(self.held)
        if free <= 0:
            return {}
        rows = await self._conn.fetch(_TAKE, run, free, self.lease, self.delay)
        waits: dict[str, float] = {}
        for host, token, wait, reset in rows:
            self.held[host] = token
            waits[host] = float(wait)
            if wait > 0:
                self.waits[host] = float(wait)
            self.reclaimed += int(reset)
        return waits

    def drop(self, hosts: Mapping[str, float]) -> None:
        """Forget hosts a transaction took and then rolled back."""
        for host in hosts:
            self.held.pop(host, None)
            self.waits.pop(host, None)

    async def claim(self, run: int, ahead: float, limit: int) -> list[asyncpg.Record]:
        if not self.held:
            return []
        return list(await self._conn.fetch(_CLAIM, run, ahead, limit, self.tokens()))

    async def renew(self, run: int) -> set[str]:
        """Push every lease this run holds; returns the hosts lost (taken over)."""
        kept = {row[0] for row in await self._conn.fetch(_RENEW, run, self.tokens(),
                                                           self.lease)}
        lost = set(self.held) - kept
        for host in lost:
            del self.held[host]
            self.waits.pop(host, None)
        await self._conn.execute("UPDATE runs SET last_seen = now() WHERE id = $1", run)
        return lost

    @staticmethod
    async def mine(conn: asyncpg.Connection, run: int) -> list[asyncpg.Record]:
        """The hosts the database says `run` holds, and their tokens."""
        return list(await conn.fetch(
            "SELECT host, lease_token FROM hosts WHERE lease_run = $1", run))

    async def keep_delays(self, run: int, delays: Mapping[str, float]) -> None:
        """Note the delay in force of held hosts, for whoever takes one over."""
        rows = [(host, delays[plain(host)]) for host in self.held if plain(host) in delays]
        if rows:
            await self._conn.execute(_DELAYS, run, *map(list, zip(*rows, strict=True)))

    async def hand_back(self, run: int, gaps: Gaps, *,
                        everything: bool = False) -> set[str]:
        """Give back idle hosts (all, their leased requests queued again, if `everything`);
        returns those given back."""
        if not self.held:
            return set()
        if everything:
            await self._conn.execute(_REQUEUE_HELD, run)
        hosts = list(self.held)
        now = gaps() if callable(gaps) else gaps  # read in the transaction, as they are now
        left = [max(0.0, now.get(plain(h), 0.0)) for h in hosts]
        given = {row[0] for row in await self._conn.fetch(
            _HAND_BACK.format(idle="" if everything else _IDLE), run, self.tokens(),
            hosts, left)}
        for host in given:
            self.held.pop(host, None)
            self.waits.pop(host, None)
        return given
