"""What the PostgreSQL store does as one of many processes on a crawl, over its session:
claims through host leases (hosts.py), what is due for this run, renewals, hand-backs and
who else is alive."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from storage.base import LeasedRequest, RequestState
from storage.postgres import runs
from storage.postgres.hosts import HostLeases
from storage.postgres.session import Session
from storage.postgres.writes import Writer, delay

log = logging.getLogger("storage")
POLL = 0.5  # seconds between two looks at a crawl whose work other processes hold now

# The earliest queued request this run could lease: of a host free, run out or its own.
_NEXT_DUE = (
    "SELECT extract(epoch FROM min(greatest(r.not_before, now() - interval '1000 years'))"
    f" - now())::float8 FROM requests r LEFT JOIN hosts h ON h.host = r.host"
    f" WHERE r.state = {RequestState.QUEUED} AND (h.lease_token IS NULL"
    " OR h.lease_until < now() OR h.lease_run = $1)")
_OTHERS_BUSY = (f"SELECT EXISTS (SELECT 1 FROM requests WHERE state IN ({RequestState.QUEUED},"
                f" {RequestState.LEASED}) AND (run IS DISTINCT FROM $1))")
_SEEN = "UPDATE runs SET last_seen = now() WHERE id = $1"


class Sharing:
    def __init__(self, session: Session, writer: Writer, schema_name: str, *, lease: float,
                 renews: bool) -> None:
        self._session = session
        self._conn = session.conn
        self._writer = writer
        self._schema = schema_name
        self.renews = renews
        self.leases = HostLeases(session.conn, lease)

    @property
    def fenced(self) -> int:
        """Outcomes of this run not stored: their lease had been taken over."""
        return self._writer.fenced

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self.leases.held)

    async def claim(self, run: int, limit: int, now: float) -> list[LeasedRequest]:
        async def lease() -> list[LeasedRequest]:
            await self._writer.apply_pending(run)  # outcomes ride along: one commit
            await self.leases.take(run)
            rows = await self.leases.claim(run, delay(now), limit)
            return self._writer.leased(rows, self.leases.waits)

        return await self._session.run(lease)

    async def next_due(self, run: int) -> float | None:
        async with self._session.reading() as conn:
            due = await conn.fetchval(_NEXT_DUE, run)
            busy = due is not None or await conn.fetchval(_OTHERS_BUSY, run)
        if not busy:
            return None
        # Only others' leases left: their outcomes may add work (a killed one's run out).
        return time.time() + (POLL if due is None else due)

    async def renew(self, run: int) -> set[str]:
        if not self.renews:  # the test-only knob: leases run out, the run still lives
            await self._session.run(lambda: self._conn.execute(_SEEN, run))
            return set()
        lost = await self._session.run(lambda: self.leases.renew(run))
        if lost:
            log.warning("lost the lease of %d host(s) to another process: %s", len(lost),
                        ", ".join(sorted(lost)[:5]))
        return lost

    async def hand_back(self, run: int, gaps: Mapping[str, float],
                        delays: Mapping[str, float], everything: bool) -> None:
        async def give() -> None:
            await self._writer.apply_pending(run)  # what is leased must be seen as ended
            if delays:
                await self.leases.keep_delays(run, delays)
            await self.leases.hand_back(run, gaps, everything=everything)

        await self._session.run(give)

    async def others_live(self, run: int | None) -> bool:
        """Whether a run of another process is alive (holds its run's lock)."""
        async with self._session.reading() as conn:
            return bool(await conn.fetchval(runs.LIVE, self._schema, run))
