"""A crawl's tables in its PostgreSQL schema, their version, and the migrations to come.

The tables are the SQLite file's, plus what many processes sharing a crawl need: a lease's
owner and token on each request, a `hosts` table holding each host's politeness gate and
lease (see `hosts.py`), and on each run a last-seen time and a count of the pages it
stored. Every time in here is the database's clock (`now()`), never a client's: a request
due at once has a `not_before` of -infinity, as SQLite's 0.
"""

from __future__ import annotations

from storage.base import RequestState

SCHEMA_VERSION = 5
VERSION_TABLE = "crawl_version"

# Every host with a request has a row in `hosts` (its gate and lease), made by the database
# as requests are inserted: one statement a batch, no Python on the write path.
_NOTE_HOSTS = (
    """CREATE FUNCTION note_hosts() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
        INSERT INTO hosts (host) SELECT DISTINCT host FROM new_rows WHERE host IS NOT NULL
        ON CONFLICT (host) DO NOTHING;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER requests_hosts AFTER INSERT ON requests REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION note_hosts()",
)
# What is due first, for a process that has nothing to claim now (sharing.py): read in
# order from here, not by scanning the queue.
_DUE = (f"CREATE INDEX IF NOT EXISTS requests_due ON requests (not_before)"
        f" WHERE state = {RequestState.QUEUED}")
# As SQLite's: the statements that bring schema N to N + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (*_NOTE_HOSTS, "INSERT INTO hosts (host) SELECT DISTINCT host FROM requests"
                      " WHERE host IS NOT NULL ON CONFLICT (host) DO NOTHING"),
    # Each run's count of the pages it stored (a done request keeps no run). IF NOT
    # EXISTS: two processes joining an old crawl at once may both migrate it.
    2: ("ALTER TABLE runs ADD COLUMN IF NOT EXISTS pages bigint NOT NULL DEFAULT 0",),
    3: (_DUE,),
    # Which machine a run's process is on (runs.py, gone()): its hostname may be another's.
    4: ("ALTER TABLE runs ADD COLUMN IF NOT EXISTS machine text",),
}

# The host of a URL, kept by the database itself (a generated column): the write path pays
# no Python for it. Scheme, optional user info, then a bracketed IPv6 address or a name.
_HOST = (r"lower(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?"
         r"(\[[^]]*\]|[^:/?#]*)'))")

SCHEMA = (
    f"CREATE TABLE {VERSION_TABLE} (version integer NOT NULL,"
    " created timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE runs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        started timestamptz NOT NULL DEFAULT now(),
        ended timestamptz,
        last_seen timestamptz NOT NULL DEFAULT now(),
        pid integer NOT NULL,
        hostname text NOT NULL,
        machine text,
        status text NOT NULL,
        config text NOT NULL,
        stats text,
        token uuid NOT NULL DEFAULT gen_random_uuid(),
        pages bigint NOT NULL DEFAULT 0
    )""",
    f"""CREATE TABLE requests (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        fp bigint NOT NULL UNIQUE,
        url text NOT NULL,
        host text GENERATED ALWAYS AS ({_HOST}) STORED,
        state smallint NOT NULL DEFAULT {RequestState.QUEUED},
        priority integer NOT NULL DEFAULT 0,
        depth integer NOT NULL DEFAULT 0,
        callback text,
        cb_kwargs text,
        redirects integer NOT NULL DEFAULT 0,
        attempts integer NOT NULL DEFAULT 0,
        not_before timestamptz NOT NULL DEFAULT '-infinity',
        parent bigint,
        run bigint,
        lease_token uuid,
        lease_until timestamptz,
        status integer,
        error text,
        kind text,
        method text,
        spec text,
        body bytea
    )""",
    f"CREATE INDEX requests_queue ON requests (priority DESC, id)"
    f" WHERE state = {RequestState.QUEUED}",
    f"CREATE INDEX requests_host_queue ON requests (host, priority DESC, id)"
    f" WHERE state = {RequestState.QUEUED}",
    _DUE,
    f"CREATE INDEX requests_leased ON requests (lease_until) WHERE state = {RequestState.LEASED}",
    f"CREATE INDEX requests_parked ON requests (depth) WHERE state = {RequestState.PARKED}",
    # Each host's politeness gate and lease (hosts.py).
    """CREATE TABLE hosts (
        host text PRIMARY KEY,
        next_allowed timestamptz NOT NULL DEFAULT '-infinity',
        delay interval NOT NULL DEFAULT '0 s',
        slots integer NOT NULL DEFAULT 1,
        in_flight integer NOT NULL DEFAULT 0,
        parked boolean NOT NULL DEFAULT false,
        lease_run bigint,
        lease_token uuid,
        lease_until timestamptz
    )""",
    "CREATE INDEX hosts_gate ON hosts (next_allowed) WHERE NOT parked",
    # The hot rows of a shared crawl: vacuumed as they churn, not at 20 % of the table.
    "ALTER TABLE hosts SET (autovacuum_vacuum_scale_factor = 0,"
    " autovacuum_vacuum_threshold = 1000)",
    "CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " request bigint NOT NULL, data text NOT NULL)",
    "CREATE TABLE counters (name text PRIMARY KEY, value bigint NOT NULL)",
    """CREATE TABLE cookies (
        domain text NOT NULL,
        path text NOT NULL,
        name text NOT NULL,
        value text NOT NULL,
        expires double precision,
        secure boolean NOT NULL,
        http_only boolean NOT NULL,
        host_only boolean NOT NULL,
        PRIMARY KEY (domain, path, name)
    )""",
    """CREATE TABLE feeds (
        name text PRIMARY KEY,
        format text NOT NULL,
        item bigint NOT NULL,
        length bigint NOT NULL,
        checksum bigint NOT NULL,
        extra text NOT NULL
    )""",
    *_NOTE_HOSTS,
)

# What --fresh empties: the whole crawl but its version. Identities restart, so a fresh
# crawl's item positions begin again.
CRAWL_TABLES = ("requests", "items", "counters", "runs", "cookies", "feeds", "hosts")


def known(version: int) -> bool:
    """Whether this version can read (and upgrade) a crawl of schema `version`."""
    return version == SCHEMA_VERSION or version in MIGRATIONS
