"""The SQL of the write path on PostgreSQL: admitting requests, leasing them, applying a
batch of outcomes with fencing, each outcome all-or-nothing. Runs inside a transaction its
caller holds. A batch is a few statements over arrays (`unnest`), one round trip each,
whatever its size.

Times: a client hands the store wall-clock times (`Retry.not_before`, `claim(now=)`); each is
turned into a delay from the client's clock at the call and applied to the database's
`now()`, so the rows hold the database's clock only.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg

from storage.base import (
    DUPLICATE_COUNTER,
    PARKED_COUNTER,
    Completion,
    Failure,
    LeasedRequest,
    NewRequest,
    Outcome,
    RequestState,
    Retry,
)
from storage.fingerprints import request_fingerprint
from storage.guarded import GuardedWriter
from storage.ledger import CookieChanges, Ledger
from storage.postgres.session import DATA_ERRORS, Session

log = logging.getLogger("storage")

MAX_DELAY = 1e11  # seconds (3,000 years): past it, a time is "never" and "long ago" alike

# The columns of a new request, as unnest() spells them.
_NEW = ("SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::text[],"
        " $6::text[], $7::int[], $8::bigint[], $9::text[], $10::text[], $11::bytea[])"
        " WITH ORDINALITY AS n(fp, url, priority, depth, callback, cb_kwargs, redirects,"
        " parent, method, spec, body, ord)")
_COLUMNS = "fp, url, priority, depth, callback, cb_kwargs, redirects, parent, method, spec, body"
_INSERT = (f"INSERT INTO requests ({_COLUMNS}, state) SELECT {_COLUMNS}, $12::smallint"
           f" FROM ({_NEW}) n ORDER BY ord ON CONFLICT (fp) DO NOTHING")
# A parked request found again where it may be queued is queued as found this time.
_UNPARK = (f"UPDATE requests r SET state = {RequestState.QUEUED}, priority = n.priority,"
           " depth = n.depth, callback = n.callback, cb_kwargs = n.cb_kwargs,"
           " redirects = n.redirects, parent = n.parent, method = n.method, spec = n.spec,"
           f" body = n.body FROM ({_NEW}) n WHERE r.fp = n.fp AND r.state = {RequestState.PARKED}")
LEASED = f"state = {RequestState.LEASED} AND run = $1"
_HELD = f"SELECT id FROM requests WHERE id = ANY($2::bigint[]) AND {LEASED} FOR UPDATE"
_COMPLETE = (f"UPDATE requests r SET state = {RequestState.DONE}, status = u.status,"
             " error = NULL, kind = NULL, run = NULL, lease_token = NULL, lease_until = NULL"
             " FROM unnest($2::bigint[], $3::int[]) AS u(id, status) WHERE r.id = u.id"
             f" AND r.state = {RequestState.LEASED} AND r.run = $1")
_RETRY = (f"UPDATE requests r SET state = {RequestState.QUEUED}, attempts = attempts + 1,"
          " not_before = now() + make_interval(secs => u.delay), error = u.error, kind = NULL,"
          " status = u.status, run = NULL, lease_token = NULL, lease_until = NULL"
          " FROM unnest($2::bigint[], $3::float8[], $4::text[], $5::int[])"
          " AS u(id, delay, error, status) WHERE r.id = u.id"
          f" AND r.state = {RequestState.LEASED} AND r.run = $1")
_DEFER = (f"UPDATE requests r SET state = {RequestState.QUEUED},"
          " not_before = now() + make_interval(secs => u.delay), error = u.error, kind = NULL,"
          " run = NULL, lease_token = NULL, lease_until = NULL"
          " FROM unnest($2::bigint[], $3::float8[], $4::text[]) AS u(id, delay, error)"
          " WHERE r.id = u.id"
          f" AND r.state = {RequestState.LEASED} AND r.run = $1")
_FAIL = (f"UPDATE requests r SET state = {RequestState.FAILED}, attempts = attempts + 1,"
         " kind = u.kind, error = u.error, status = u.status, run = NULL, lease_token = NULL,"
         " lease_until = NULL FROM unnest($2::bigint[], $3::text[], $4::text[], $5::int[])"
         " AS u(id, kind, error, status) WHERE r.id = u.id"
         f" AND r.state = {RequestState.LEASED} AND r.run = $1")
_ITEMS = ("INSERT INTO items (request, data) SELECT request, data"
          " FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS n(request, data, ord)"
          " ORDER BY ord")
_DELETE_COOKIES = ("DELETE FROM cookies c USING unnest($1::text[], $2::text[], $3::text[])"
                   " AS g(domain, path, name) WHERE c.domain = g.domain"
                   " AND rtrim(c.path, '/') = g.path AND c.name = g.name")
_INSERT_COOKIES = (
    "INSERT INTO cookies (domain, path, name, value, expires, secure, http_only, host_only)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],"
    " $6::bool[], $7::bool[], $8::bool[]) ON CONFLICT (domain, path, name) DO UPDATE SET"
    " value = excluded.value, expires = excluded.expires, secure = excluded.secure,"
    " http_only = excluded.http_only, host_only = excluded.host_only"
)
_SAVE_FEEDS = (
    "INSERT INTO feeds (name, format, item, length, checksum, extra)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],"
    " $6::text[]) ON CONFLICT (name) DO UPDATE SET format = excluded.format,"
    " item = excluded.item, length = excluded.length, checksum = excluded.checksum,"
    " extra = excluded.extra"
)
# A run's pages (done outcomes it stored), for `crawl stats`: one statement a batch.
_PAGES = "UPDATE runs SET pages = pages + $2 WHERE id = $1"
ADD_COUNTERS = (
    "INSERT INTO counters (name, value) SELECT * FROM unnest($1::text[], $2::bigint[])"
    " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value"
)


def delay(at: float) -> float:
    """A client's wall-clock time as seconds from now, for `now() + delay` on the server."""
    return min(max(at - time.time(), -MAX_DELAY), MAX_DELAY)


def affected(status: str) -> int:
    """The row count of a command's status ("INSERT 0 12", "UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


def _columns(requests: Sequence[NewRequest]) -> list[list[Any]]:
    """A batch of new requests as one array a column, for `unnest`."""
    rows = [(request_fingerprint(r), r.url, r.priority, r.depth, r.callback, r.cb_kwargs,
             r.redirects, r.parent, r.method, r.spec, r.body) for r in requests]
    return [list(column) for column in zip(*rows, strict=True)]


# Items are numbered in commit order, so that a reader going on from the last id it saw
# (`iter_items`, `items_after`) never skips one another process commits later: a group
# commit with items takes this lock (the crawl's schema, key 0; runs are 1 and up) before
# anything else, and holds it to its end. Taken first, it cannot deadlock with the request
# and host rows locked after it.
_ITEMS_IN_ORDER = "SELECT pg_advisory_xact_lock(hashtext($1), 0)"


def storable(text: str) -> str:
    """`text` with anything PostgreSQL's text cannot hold (NUL, lone surrogates) escaped."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


class Writer(GuardedWriter):
    data_errors = DATA_ERRORS
    storable = staticmethod(storable)

    def __init__(self, session: Session, ledger: Ledger, schema_name: str) -> None:
        self._session = session
        self._ledger = ledger
        self._schema = schema_name
        self.parking = False  # the crawl has parked requests: new ones may unpark them
        self.fenced = 0  # outcomes dropped: their request was no longer leased to this run
        # Requests claimed and not ended yet (in memory, or in flight): what this run knows
        # it holds, when the database must be told after a lost connection (sharing.py).
        # A claim's are added once its COMMIT is known to have gone through: those of a
        # claim whose reply was lost are leased to the run and unknown to it.
        self.out: set[int] = set()
        self.tentative: set[int] = set()  # a claim's, while its COMMIT is under way

    @property
    def _conn(self) -> asyncpg.Connection:
        return self._session.conn  # the current one: a lost connection is made again

    def leased(self, rows: Sequence[Any],
               waits: dict[str, float]) -> list[tuple[str, LeasedRequest]]:
        """Claimed rows (the host last) as (host, request); the first of a newly leased host
        carry the wait before its gate opens (`waits`, emptied of them)."""
        leased = [(row[11], LeasedRequest(row[0], row[1], row[2], row[3], row[4], row[5],
                                          row[6], row[7], row[8], row[9], row[10],
                                          waits.pop(row[11], 0.0) if waits else 0.0))
                  for row in rows]
        self._ledger.delta.move("queued", "leased", len(leased))
        leased.sort(key=lambda hr: (-hr[1].priority, hr[1].id))  # RETURNING gives no order
        return leased

    async def _statement(self, sql: str) -> None:
        await self._conn.execute(sql)

    async def apply_pending(self, run: int) -> None:
        """Write every buffered outcome (and the cookies and feed marks kept before them)
        inside the caller's transaction."""
        cookies = self._ledger.take_cookies()
        if cookies:
            await self._write_cookies(cookies)
        marks = self._ledger.take_feeds()
        if marks:
            await self._conn.execute(_SAVE_FEEDS, *map(list, zip(*(
                (m.name, m.format, m.item, m.length, m.checksum, m.extra) for m in marks),
                strict=True)))
        if not self._ledger.pending:
            return
        batch = self._ledger.take()
        if any(isinstance(o, Completion | Failure) and o.items for o in batch):
            await self._conn.execute(_ITEMS_IN_ORDER, self._schema)
        await self._apply_guarded(batch, run)

    async def _write_cookies(self, cookies: CookieChanges) -> None:
        if cookies.replace:
            await self._conn.execute("DELETE FROM cookies")
        elif cookies.by_key:
            await self._conn.execute(_DELETE_COOKIES, *map(list, zip(*cookies.by_key,
                                                                    strict=True)))
        kept = [(c.domain, c.path, c.name, c.value, c.expires, c.secure, c.http_only,
                 c.host_only) for c in cookies.by_key.values() if c is not None]
        if kept:
            await self._conn.execute(_INSERT_COOKIES, *map(list, zip(*kept, strict=True)))

    async def _apply(self, batch: list[Outcome], run: int) -> None:
        # Fencing: only the lease holder's outcome counts, and only once. The rows stay
        # locked to this transaction until it ends.
        held = {row[0] for row in await self._conn.fetch(
            _HELD, run, list({o.request_id for o in batch}))}
        done: list[tuple[int, int | None]] = []
        retries: list[tuple[int, float, str, int | None]] = []
        defers: list[tuple[int, float, str]] = []
        failures: list[tuple[int, str, str, int | None]] = []
        items: list[tuple[int, str]] = []
        new: list[NewRequest] = []
        parked: list[NewRequest] = []
        counters: Counter[str] = Counter()
        for o in batch:
            self.out.discard(o.request_id)
            if o.request_id not in held:
                self._fence(o)
                continue
            held.discard(o.request_id)
            if isinstance(o, Completion | Failure):
                if isinstance(o, Completion):
                    done.append((o.request_id, o.status))
                else:
                    failures.append((o.request_id, o.kind, o.error, o.status))
                items.extend((o.request_id, data) for data in o.items)
                new.extend(o.requests)
                parked.extend(o.parked)
                counters.update(o.counters)
            elif isinstance(o, Retry):
                retries.append((o.request_id, delay(o.not_before), o.error, o.status))
            else:
                defers.append((o.request_id, delay(o.not_before), o.reason))
        # Outputs first, then the done marks: all inside one transaction.
        if items:
            await self._conn.execute(_ITEMS, *map(list, zip(*items, strict=True)))
        added = await self.insert_requests(new, counters)
        added += await self._park(parked, counters)  # after: a request queued here wins
        if len(new) + len(parked) > added:
            counters[DUPLICATE_COUNTER] += len(new) + len(parked) - added
        for sql, rows in ((_COMPLETE, done), (_RETRY, retries), (_DEFER, defers),
                          (_FAIL, failures)):
            if rows:
                await self._conn.execute(sql, run, *map(list, zip(*rows, strict=True)))
        if done:
            await self._conn.execute(_PAGES, run, len(done))
        await self.add_counters(counters)
        tally = self._ledger.delta
        tally.move("leased", "done", len(done))
        tally.move("leased", "failed", len(failures))
        tally.move("leased", "queued", len(retries) + len(defers))
        tally.items += len(items)

    def _fence(self, outcome: Outcome) -> None:
        # Another process took its host over (our lease ran out) and queued it again:
        # nothing of this outcome is stored, its new requests and counters included.
        self.fenced += 1
        log.warning("request %d: outcome not stored, its lease was taken over (fenced)",
                    outcome.request_id)

    async def insert_requests(self, requests: Sequence[NewRequest],
                              counters: Counter[str]) -> int:
        """Queue the requests that have no row yet, and the parked ones found again; returns
        how many were queued."""
        if not requests:
            return 0
        columns, unparked = _columns(requests), 0
        if self.parking:
            unparked = affected(await self._conn.execute(_UNPARK, *columns))
            counters[PARKED_COUNTER] -= unparked
            self._ledger.delta.parked -= unparked
        added = affected(await self._conn.execute(_INSERT, *columns, RequestState.QUEUED))
        added += unparked
        self._ledger.delta.queued += added
        return added

    async def _park(self, requests: Sequence[NewRequest], counters: Counter[str]) -> int:
        if not requests:
            return 0
        parked = affected(await self._conn.execute(_INSERT, *_columns(requests),
                                                   RequestState.PARKED))
        self.parking = self.parking or parked > 0
        counters[PARKED_COUNTER] += parked
        self._ledger.delta.parked += parked
        return parked

    async def add_counters(self, counters: Counter[str]) -> None:
        counts = [(name, value) for name, value in counters.items() if value]
        if counts:
            await self._conn.execute(ADD_COUNTERS, *map(list, zip(*counts, strict=True)))
        self._ledger.delta.counters.update(counters)

