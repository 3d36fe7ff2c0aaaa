"""The state file's tables, its version, and how a file of an older version is read and
brought up to date."""

from __future__ import annotations

import time

import aiosqlite

from storage.base import RequestState

APPLICATION_ID = 0x43524157  # "CRAW": marks a file as ours before any table is read
SCHEMA_VERSION = 7
# The crawl's session: its cookie jar as the last commit left it (schema 6).
COOKIES_TABLE = """CREATE TABLE IF NOT EXISTS cookies (
    domain TEXT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    expires REAL,
    secure INTEGER NOT NULL,
    http_only INTEGER NOT NULL,
    host_only INTEGER NOT NULL,
    PRIMARY KEY (domain, path, name)
) WITHOUT ROWID"""
# How far each feed (a file the crawl writes its items to) has got (schema 7): written in
# the same commits as the rest, so a resumed crawl knows what each file holds.
FEEDS_TABLE = """CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    item INTEGER NOT NULL,
    length INTEGER NOT NULL,
    checksum INTEGER NOT NULL,
    extra TEXT NOT NULL
) WITHOUT ROWID"""
PARKED_INDEX = (f"CREATE INDEX IF NOT EXISTS requests_parked ON requests (depth)"
                f" WHERE state = {RequestState.PARKED}")

SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    ended REAL,
    pid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    stats TEXT
);
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    fp INTEGER NOT NULL UNIQUE,
    url TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    depth INTEGER NOT NULL DEFAULT 0,
    callback TEXT,
    cb_kwargs TEXT,
    redirects INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    parent INTEGER,
    run INTEGER,
    status INTEGER,
    error TEXT,
    kind TEXT,
    method TEXT,
    spec TEXT,
    body BLOB
);
CREATE INDEX requests_queue ON requests (priority DESC, id, not_before) WHERE state = 0;
{PARKED_INDEX};
CREATE TABLE items (id INTEGER PRIMARY KEY, request INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
{COOKIES_TABLE};
{FEEDS_TABLE};
"""

# Up to schema 3, a failed request's kind was the text before the first colon of its error
# ("timeout: no answer"). The one error those versions wrote without a colon was robots.txt's
# ("robots.txt answered HTTP 503; gave up after 4 tries"), which is the kind "robots" now.
# These two expressions are the one place that text is split: by the migration to schema 4,
# and when an older file is read as it is (read-only opens change nothing).
LEGACY_KIND = ("CASE WHEN instr(error, ':') > 0"
               " THEN substr(error, 1, instr(error, ':') - 1)"
               " WHEN error IS NOT NULL THEN 'robots' END")
LEGACY_MESSAGE = ("CASE WHEN instr(error, ':') > 0"
                  " THEN ltrim(substr(error, instr(error, ':') + 1)) ELSE error END")

# Opening an older file for writing brings it up to date (reading needs nothing): schema 1
# lacked runs.stats, schema 2 parked requests (an older crawler must not meet that state),
# schema 3 the failure's kind as a column, schema 4 what a request sends besides its URL
# (an older row is a GET with nothing more), schema 5 the cookies table, schema 6 the feeds.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE runs ADD COLUMN stats TEXT",),
    2: (PARKED_INDEX,),
    3: ("ALTER TABLE requests ADD COLUMN kind TEXT",
        f"UPDATE requests SET kind = {LEGACY_KIND}, error = {LEGACY_MESSAGE}"
        f" WHERE state = {RequestState.FAILED}"),
    4: ("ALTER TABLE requests ADD COLUMN method TEXT",
        "ALTER TABLE requests ADD COLUMN spec TEXT",
        "ALTER TABLE requests ADD COLUMN body BLOB"),
    5: (COOKIES_TABLE,),
    6: (FEEDS_TABLE,),
}


def known(version: int) -> bool:
    """Whether this version can read (and upgrade) a file of schema `version`."""
    return version == SCHEMA_VERSION or version in MIGRATIONS


def failure_columns(version: int) -> tuple[str, str]:
    """The SQL that reads a failed request's kind and its message in a file of `version`."""
    return ("kind", "error") if version > 3 else (LEGACY_KIND, LEGACY_MESSAGE)


def stats_column(version: int) -> str:
    """The SQL that reads a run's statistics: schema 1 kept none."""
    return "stats" if version > 1 else "NULL"


async def create(conn: aiosqlite.Connection) -> None:
    """Make an empty file a state file, inside the caller's transaction."""
    async with conn.execute("PRAGMA application_id") as cur:
        row = await cur.fetchone()
    if row is not None and row[0] != 0:
        return  # another process made it a state file meanwhile
    for statement in SCHEMA.split(";"):
        if statement.strip():
            await conn.execute(statement)
    await conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    await conn.execute("INSERT INTO meta (key, value) VALUES ('created', ?)", (str(time.time()),))


async def migrate(conn: aiosqlite.Connection, version: int) -> None:
    """Bring a file of schema `version` up to date, inside the caller's transaction."""
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            await conn.execute(statement)
    await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
