"""Opening a crawl's schema (finding it, creating it, checking its version) and a run's
start and end as rows."""

from __future__ import annotations

import os
import socket
import uuid

import asyncpg

from storage.base import PARKED_COUNTER, NotAStateFile, Refused, RequestState, SchemaMismatch
from storage.locations import SCHEMA_PREFIX, Location, crawl_of, quoted, schema_name
from storage.postgres import schema
from storage.postgres.writes import ADD_COUNTERS, LEASED

DEFAULT_CRAWL = "default"
_CRAWLS = (f"SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid"
           f" WHERE c.relname = '{schema.VERSION_TABLE}' AND n.nspname LIKE '{SCHEMA_PREFIX}%'"
           " ORDER BY n.nspname")


async def choose(conn: asyncpg.Connection, location: Location, *, readonly: bool) -> str:
    """The schema of the crawl `location` names; with no `?crawl=`, the database's only one
    (a new one named "default" for a writer when there is none)."""
    if location.crawl is not None:
        return schema_name(location.crawl)
    found = [row[0] for row in await conn.fetch(_CRAWLS)]
    if len(found) == 1:
        return str(found[0])
    if not found:
        if readonly:
            raise NotAStateFile(f"{location.shown} holds no crawl")
        return schema_name(DEFAULT_CRAWL)
    names = ", ".join(crawl_of(name) for name in found)
    raise Refused(f"{location.shown} holds {len(found)} crawls ({names}): name one with "
                  f"?crawl=NAME, e.g. {location.with_crawl(crawl_of(found[0]))}")


async def version(conn: asyncpg.Connection, name: str, shown: str) -> int | None:
    """The crawl schema's version; None when there is no such schema (or an empty one). A
    schema that holds other tables is refused, untouched."""
    tables = [row[0] for row in await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON c.relnamespace = n.oid"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v')", name)]
    if not tables:
        return None
    if schema.VERSION_TABLE not in tables:
        raise NotAStateFile(f"the schema {quoted(name)} of {shown} is not a crawl's; "
                            "it was left untouched")
    found = await conn.fetchval(f"SELECT max(version) FROM {quoted(name)}.{schema.VERSION_TABLE}")
    if found is None or not schema.known(int(found)):
        raise SchemaMismatch(
            f"{shown} holds a crawl of schema {found}, which this version of the crawler "
            f"cannot read (it reads schema {schema.SCHEMA_VERSION}); it was left untouched")
    return int(found)


async def create(conn: asyncpg.Connection, name: str) -> None:
    """Make the crawl's schema and tables, inside the caller's transaction."""
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(name)}")
    for statement in schema.SCHEMA:
        await conn.execute(statement)
    await conn.execute(f"INSERT INTO {schema.VERSION_TABLE} (version) VALUES ($1)",
                       schema.SCHEMA_VERSION)
    await conn.execute("INSERT INTO meta (key, value) VALUES ('created', now()::text)")


async def migrate(conn: asyncpg.Connection, found: int) -> None:
    # Two processes joining an old crawl at once: the second waits here for the first's
    # commit, then finds it done (IF NOT EXISTS alone races: CREATE INDEX lets another in).
    await conn.execute(f"LOCK TABLE {schema.VERSION_TABLE} IN SHARE ROW EXCLUSIVE MODE")
    found = int(await conn.fetchval(f"SELECT max(version) FROM {schema.VERSION_TABLE}"))
    if found >= schema.SCHEMA_VERSION:
        return  # another did it meanwhile
    for step in range(found, schema.SCHEMA_VERSION):
        for statement in schema.MIGRATIONS[step]:
            await conn.execute(statement)
    await conn.execute(f"UPDATE {schema.VERSION_TABLE} SET version = $1", schema.SCHEMA_VERSION)


_UNPARK_TO = (f"UPDATE requests SET state = {RequestState.QUEUED}"
              f" WHERE state = {RequestState.PARKED} AND depth <= coalesce($1::int, depth)")
_SET_META = ("INSERT INTO meta (key, value) VALUES ($1, $2)"
             " ON CONFLICT (key) DO UPDATE SET value = excluded.value")


# A run is alive while its process holds its advisory lock (keys: the crawl's schema, the
# run): the server drops it with the connection, kill -9 included. The schema's name is $1.
LOCK_RUN = "SELECT pg_advisory_lock(hashtext($1), $2::int)"
LIVE_RUNS = ("SELECT l.objid::bigint FROM pg_locks l WHERE l.locktype = 'advisory'"
              " AND l.granted AND l.objsubid = 2 AND l.database ="
              " (SELECT oid FROM pg_database WHERE datname = current_database())"
              " AND l.classid::bigint = (hashtext($1)::bigint & 4294967295)")
# The server process of our connection lost ($3), if it still holds the run's lock (a
# network cut on our side: the server has not heard of it, and may not for hours): ended,
# waited for up to 5 s, so that the new connection can take the lock. Both the pid and the
# lock must match: a run id can be another's after a --fresh (RESTART IDENTITY).
END_STALE = ("SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks l"
             " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.pid = $3"
             " AND l.pid <> pg_backend_pid() AND l.objid::bigint = $2 AND l.database ="
             " (SELECT oid FROM pg_database WHERE datname = current_database())"
             " AND l.classid::bigint = (hashtext($1)::bigint & 4294967295)")
LIVE = (f"SELECT EXISTS (SELECT 1 FROM runs WHERE status = 'running'"
        f" AND id IS DISTINCT FROM $2 AND id IN ({LIVE_RUNS}))")
# The hosts a run still holds at its end had work left (jobs in its frontier, requests cut
# in flight): it may have sent to one just now, and no gap was handed back with them, so
# the next holder waits the host's delay first (as after a takeover, hosts.py).
_RELEASE_HOSTS = ("UPDATE hosts SET lease_run = NULL, lease_token = NULL, lease_until = NULL,"
                  " next_allowed = greatest(next_allowed, now() + greatest(delay,"
                  " make_interval(secs => $2)))"
                  " WHERE lease_run = $1")


async def start(conn: asyncpg.Connection, spider: str, config: str, *, fresh: bool,
                identity: str | None, depth_limit: int | None,
                schema_name: str) -> tuple[int, uuid.UUID, int]:
    """Start a run; returns its id, its token and how many leases of dead runs went back."""
    if fresh:
        # Only this crawl's tables: other crawls in the database are other schemas.
        await conn.execute(f"TRUNCATE {', '.join(schema.CRAWL_TABLES)} RESTART IDENTITY")
    await conn.execute(_SET_META, "spider", spider)
    if identity is not None:
        await conn.execute(_SET_META, "identity", identity)
    unparked = int((await conn.execute(_UNPARK_TO, depth_limit)).rsplit(" ", 1)[-1])
    if unparked:
        await conn.execute(ADD_COUNTERS, [PARKED_COUNTER], [-unparked])
    # A run whose process let go of its lock is gone (killed), or cut off from us for a
    # moment (a restart, a network blip: it comes back, revives, and finds it holds
    # nothing): its requests go back now, and its hosts once their leases run out, as it
    # may still be sending to them. Unless it is provably gone: a process of this machine
    # that is no more (the usual kill -9 and run again), whose hosts are free at once.
    ended = await conn.fetch("UPDATE runs SET status = 'crashed' WHERE status = 'running'"
                             f" AND id NOT IN ({LIVE_RUNS}) RETURNING id, machine, pid",
                             schema_name)
    reclaimed = await conn.execute(
        f"UPDATE requests SET state = {RequestState.QUEUED}, run = NULL, lease_token = NULL,"
        f" lease_until = NULL WHERE state = {RequestState.LEASED} AND (run IS NULL OR run IN"
        " (SELECT id FROM runs WHERE status <> 'running'))")
    # The next to take one of their hosts keeps its delay first (the dead process may have
    # just sent a request to it).
    await conn.execute(LET_GO_OF_RUNS, [run for run, machine, pid in ended
                                        if gone(machine, pid, schema_name, run)])
    row = await conn.fetchrow(
        "INSERT INTO runs (pid, hostname, machine, status, config)"
        " VALUES ($1, $2, $3, 'running', $4) RETURNING id, token",
        os.getpid(), socket.gethostname(), MACHINE, config)
    await conn.execute(LOCK_RUN, schema_name, int(row[0]))
    return int(row[0]), row[1], int(reclaimed.rsplit(" ", 1)[-1])


LET_GO_OF_RUNS = ("UPDATE hosts SET lease_until = '-infinity'"
                  " WHERE lease_run = ANY($1::bigint[])")
# Runs that may still have a process (holding its lock, or seen within a lease and not
# provably gone): a --fresh must not empty the crawl under them. Not ended, whatever their
# status: one cut off for a moment is 'crashed' to a process that started meanwhile.
_MAYBE_ALIVE = (f"SELECT id, machine, pid, id IN ({LIVE_RUNS}) FROM runs WHERE"
                f" ended IS NULL AND (id IN ({LIVE_RUNS})"
                " OR last_seen > now() - make_interval(secs => $2))")


# The runs this process has open now, by (schema, run): one of its own pid that is not
# here was left by a store closed without finishing (a crawl from Python that failed).
OPEN: set[tuple[str, int]] = set()


def _machine() -> str:
    """This machine, since its boot, and this process's pid namespace: where a pid names
    one process. Not the hostname: cloned VMs, and containers on the host's network, share
    one (with pids of their own). Without /proc (not Linux), the hostname, as before."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            return f"{boot.read().strip()}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return f"host {socket.gethostname()}"


MACHINE = _machine()


def gone(machine: str | None, pid: int, schema_name: str, run: int) -> bool:
    """Whether the process of a run is provably gone: it ran on this machine (in our pid
    namespace, since its boot), and no process has its pid now (one that has may be
    another: then it is not provably gone), or it is this process, which has it open no
    more."""
    if machine is None or machine != MACHINE:
        return False
    if pid == os.getpid():
        return (schema_name, run) not in OPEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


async def maybe_alive(conn: asyncpg.Connection, schema_name: str, lease: float) -> bool:
    """Whether another process may be running the crawl: one holds its run's lock, or was
    seen within a lease and is not provably gone (its connection lost for a moment)."""
    for run, machine, pid, locked in await conn.fetch(_MAYBE_ALIVE, schema_name, lease):
        if locked or not gone(machine, pid, schema_name, run):
            return True
    return False


async def end(conn: asyncpg.Connection, run: int, status: str, stats: str | None,
              delay: float = 0.0) -> int:
    """Record how run `run` ended; returns how many of its leases went back to the queue."""
    released = await conn.execute(
        f"UPDATE requests SET state = {RequestState.QUEUED}, run = NULL, lease_token = NULL,"
        f" lease_until = NULL WHERE {LEASED}", run)
    await conn.execute(_RELEASE_HOSTS, run, delay)
    await conn.execute(
        "UPDATE runs SET status = $2, ended = now(), last_seen = now(),"
        " stats = coalesce($3, stats) WHERE id = $1", run, status, stats)
    return int(released.rsplit(" ", 1)[-1])


async def requeue_failed(conn: asyncpg.Connection) -> int:
    status = await conn.execute(
        f"UPDATE requests SET state = {RequestState.QUEUED}, attempts = 0,"
        f" not_before = '-infinity', run = NULL, kind = NULL WHERE state = {RequestState.FAILED}")
    return int(status.rsplit(" ", 1)[-1])
