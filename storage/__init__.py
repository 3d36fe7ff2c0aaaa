"""Durable crawl state behind one interface (`Store`). Knows nothing of crawling.

Importing this package loads no database driver: `open_store` imports the implementation
it needs when it is called, and `SQLiteStore` is imported from `storage.sqlite`."""

from __future__ import annotations

from storage.base import (
    DUPLICATE_COUNTER,
    PARKED_COUNTER,
    Breakdown,
    Completion,
    CrawlCounts,
    DatabaseUnavailable,
    Defer,
    FailedRequest,
    Failure,
    FeedMark,
    LeasedRequest,
    NewRequest,
    NotAStateFile,
    Outcome,
    Refused,
    RequestState,
    Retry,
    RunInfo,
    RunRecord,
    SchemaMismatch,
    SpiderMismatch,
    StateLocked,
    Store,
    StoredCookie,
    StoreError,
)
from storage.census import HostRecord, HostState, HostStates, ProcessRecord
from storage.files import StateFileUnavailable
from storage.locations import is_postgres, name_crawl, shown
from storage.sharable import Gaps


async def open_store(location: str, *, readonly: bool = False) -> Store:
    """Open the store a `--state` location names: a `postgresql://` (or `postgres://`) URL,
    a crawl in a PostgreSQL database (see `storage.locations`), else an SQLite file's path."""
    # The drivers load on first use.
    if is_postgres(location):
        from storage.postgres import PostgresStore  # noqa: PLC0415

        return await PostgresStore.open(location, readonly=readonly)
    from storage.sqlite import SQLiteStore  # noqa: PLC0415

    return await SQLiteStore.open(location, readonly=readonly)


__all__ = [
    "DUPLICATE_COUNTER",
    "PARKED_COUNTER",
    "Breakdown",
    "Completion",
    "CrawlCounts",
    "DatabaseUnavailable",
    "Defer",
    "FailedRequest",
    "Failure",
    "FeedMark",
    "Gaps",
    "HostRecord",
    "HostState",
    "HostStates",
    "LeasedRequest",
    "NewRequest",
    "NotAStateFile",
    "Outcome",
    "ProcessRecord",
    "Refused",
    "RequestState",
    "Retry",
    "RunInfo",
    "RunRecord",
    "SchemaMismatch",
    "SpiderMismatch",
    "StateFileUnavailable",
    "StateLocked",
    "Store",
    "StoreError",
    "StoredCookie",
    "is_postgres",
    "name_crawl",
    "open_store",
    "shown",
]
