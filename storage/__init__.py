"""Durable crawl state behind one interface (`Store`). Knows nothing of crawling."""

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
    LeasedRequest,
    NewRequest,
    NotAStateFile,
    Outcome,
    Release,
    RequestState,
    Retry,
    RunInfo,
    RunRecord,
    SchemaMismatch,
    SpiderMismatch,
    StateLocked,
    Store,
    StoreError,
)
from storage.files import StateFileUnavailable
from storage.sqlite import SQLiteStore


async def open_store(location: str, *, readonly: bool = False) -> Store:
    """Open the store a `--state` location names. Today: a path to an SQLite file."""
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
    "LeasedRequest",
    "NewRequest",
    "NotAStateFile",
    "Outcome",
    "Release",
    "RequestState",
    "Retry",
    "RunInfo",
    "RunRecord",
    "SQLiteStore",
    "SchemaMismatch",
    "SpiderMismatch",
    "StateFileUnavailable",
    "StateLocked",
    "Store",
    "StoreError",
    "open_store",
]
