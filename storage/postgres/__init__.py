"""The PostgreSQL store, one module a job: `schema` (tables, version, migrations to come),
`session` (the connection, one transaction at a time, what a failure means), `writes` (the
SQL of admitting, leasing and applying outcomes), `runs` (finding and creating a crawl's
schema; a run's rows), `reads` and `store` (`PostgresStore`). The only package that imports
asyncpg: chosen for being pure asyncio, speaking PostgreSQL's binary protocol, and sending a
batch (arrays, executemany) in one round trip: claims and group commits stay cheap."""

from __future__ import annotations

from storage.postgres.schema import SCHEMA_VERSION
from storage.postgres.store import PostgresStore

__all__ = ["SCHEMA_VERSION", "PostgresStore"]
