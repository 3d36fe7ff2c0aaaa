"""A run's start and end as rows: who holds the crawl, and what a run that is gone left."""

from __future__ import annotations

import os
import socket
import time

import aiosqlite

from storage.base import PARKED_COUNTER, RequestState
from storage.sqlite.writes import ADD_COUNTER, LEASED

_UNPARK_TO = (
    f"UPDATE requests SET state = {RequestState.QUEUED}"
    f" WHERE state = {RequestState.PARKED} AND depth <= coalesce(?, depth)"
)


async def start(conn: aiosqlite.Connection, spider: str, config: str, *, fresh: bool,
                identity: str | None, depth_limit: int | None) -> tuple[int, int]:
    """Start a run; returns its id and how many leases of dead runs went back to the queue."""
    if fresh:
        # The feeds' marks go with the items they count: the feeds are written anew.
        for table in ("requests", "items", "counters", "runs", "cookies", "feeds"):
            await conn.execute(f"DELETE FROM {table}")
    await conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('spider', ?)", (spider,))
    if identity is not None:
        await conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('identity', ?)", (identity,)
        )
    # With the identity, so that a deeper limit and its parked requests never disagree.
    cur = await conn.execute(_UNPARK_TO, (depth_limit,))
    if cur.rowcount > 0:
        await conn.execute(ADD_COUNTER, (PARKED_COUNTER, -cur.rowcount))
    # We hold the file lock, so any run still marked running has died.
    await conn.execute("UPDATE runs SET status = 'crashed' WHERE status = 'running'")
    cur = await conn.execute(
        f"UPDATE requests SET state = {RequestState.QUEUED}, run = NULL"
        f" WHERE state = {RequestState.LEASED}"
    )
    reclaimed = cur.rowcount
    cur = await conn.execute(
        "INSERT INTO runs (started, pid, hostname, status, config)"
        " VALUES (?, ?, ?, 'running', ?)",
        (time.time(), os.getpid(), socket.gethostname(), config),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid, reclaimed


async def end(conn: aiosqlite.Connection, run: int, status: str, stats: str | None) -> int:
    """Record how run `run` ended; returns how many of its leases went back to the queue."""
    cur = await conn.execute(
        f"UPDATE requests SET state = {RequestState.QUEUED}, run = NULL WHERE {LEASED}", (run,)
    )
    await conn.execute(
        "UPDATE runs SET status = ?, ended = ?, stats = coalesce(?, stats) WHERE id = ?",
        (status, time.time(), stats, run),
    )
    return cur.rowcount


async def requeue_failed(conn: aiosqlite.Connection) -> int:
    cur = await conn.execute(
        f"UPDATE requests SET state = {RequestState.QUEUED}, attempts = 0,"
        f" not_before = 0, run = NULL, kind = NULL WHERE state = {RequestState.FAILED}"
    )
    return cur.rowcount
