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
from storage.files import StateFileUnavailable


async def open_store(location: str, *, readonly: bool = False) -> Store:
    """Open the store a `--state` location names. Today: a path to an SQLite file."""
    from storage.sqlite import SQLiteStore  # noqa: PLC0415  # the driver loads on first use

    return await SQLiteStore.open(location, readonly=readonly)


__all__ = [
    "DUPLICATE_COUNTER",
    "PARKED_COUNTER",
    "Breakdown",
    "Completion",
    "CrawlCounts",
    "Defer",
    "FailedRequest",
    "Failure",
    "FeedMark",
    "LeasedRequest",
    "NewRequest",
    "NotAStateFile",
    "Outcome",
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
    "open_store",
]
