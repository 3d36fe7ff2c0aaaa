"""The SQLite store, one module a job: `schema` (tables, versions, migrations), `opening`
(what a file is, connecting to it without changing it), `transactions` (one write at a
time, what a failed write means), `ledger` (outcomes awaiting their commit, running counts),
`writes` (the SQL of admitting requests and applying outcomes), `runs` (a run's rows),
`reads` (counts, items, failures) and `store` (`SQLiteStore`, which puts them together).
The only package that imports aiosqlite or sqlite3."""

from __future__ import annotations

from storage.sqlite.ledger import MAX_PENDING_NEW
from storage.sqlite.schema import SCHEMA_VERSION
from storage.sqlite.store import SQLiteStore
from storage.sqlite.writes import fingerprint

__all__ = ["MAX_PENDING_NEW", "SCHEMA_VERSION", "SQLiteStore", "fingerprint"]
