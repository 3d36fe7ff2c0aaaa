"""The store's side of a crawl's identity and depth limit (issue 10, item 11), on real files:
parked requests, queued when a deeper run or a shorter way finds them, and the identity text."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import (
    DUPLICATE_COUNTER,
    PARKED_COUNTER,
    Completion,
    NewRequest,
    RequestState,
)
from storage.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.oldschema import make_older

NOW = 1_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = await SQLiteStore.open(tmp_path / "crawl.db")
    await s.open_crawl("spider", "{}", fresh=False, identity="one", depth_limit=1)
    try:
        yield s
    finally:
        await s.close()


def rows(path: Path) -> dict[str, tuple[int, int, int | None]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {url: (state, depth, parent) for url, state, depth, parent
                in conn.execute("SELECT url, state, depth, parent FROM requests")}


async def test_parked_requests_wait_and_a_shorter_way_queues_them(store: SQLiteStore,
                                                                  tmp_path: Path) -> None:
    await store.add([NewRequest("http://h/")])
    (root,) = await store.claim(10, NOW)
    await store.record(Completion(root.id, 200, requests=[NewRequest("http://h/a", depth=1)],
                                  parked=[NewRequest("http://h/deep", depth=2, parent=root.id),
                                          NewRequest("http://h/a", depth=2)]))
    await store.flush()
    counts = await store.counts()
    assert (counts.queued, counts.parked) == (1, 1)
    assert counts.counters == {PARKED_COUNTER: 1, DUPLICATE_COUNTER: 1}
    assert store.tally().parked == 1
    (a,) = await store.claim(10, NOW)  # the parked one is never claimed
    assert a.url == "http://h/a"
    # Found again too deep: a duplicate. Found within the limit: queued as found now.
    await store.record(Completion(a.id, 200, requests=[NewRequest("http://h/deep", depth=1,
                                                                  parent=a.id)],
                                  parked=[NewRequest("http://h/deep", depth=2)]))
    await store.flush()
    counts = await store.counts()
    assert (counts.queued, counts.parked) == (1, 0)
    assert counts.counters == {PARKED_COUNTER: 0, DUPLICATE_COUNTER: 2}
    assert rows(tmp_path / "crawl.db")["http://h/deep"] == (RequestState.QUEUED, 1, a.id)
    assert store.tally().queued == 1 and store.tally().parked == 0


async def test_a_deeper_limit_on_open_queues_the_parked_requests(tmp_path: Path) -> None:
    path = tmp_path / "crawl.db"
    s = await SQLiteStore.open(path)
    await s.open_crawl("spider", "{}", fresh=False, identity="depth 1", depth_limit=1)
    await s.add([NewRequest("http://h/")])
    (root,) = await s.claim(1, NOW)
    await s.record(Completion(root.id, 200, parked=[NewRequest(f"http://h/{i}", depth=2)
                                                    for i in range(3)]))
    await s.finish_run("finished")
    await s.close()
    for limit, queued in ((1, 0), (2, 3)):
        s = await SQLiteStore.open(path)
        try:
            assert await s.identity() == "depth 1"
            info = await s.open_crawl("spider", "{}", fresh=False, identity=f"depth {limit}",
                                      depth_limit=limit)
            assert (info.counts.queued, info.counts.parked) == (queued, 3 - queued)
            assert info.counts.counters.get(PARKED_COUNTER, 0) == 3 - queued
            assert await s.identity() == f"depth {limit}"
            await s.finish_run("finished")
        finally:
            await s.close()


async def test_an_older_schema_gets_the_parked_index(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    s = await SQLiteStore.open(path)
    await s.open_crawl("spider", "{}", fresh=False)
    await s.close()
    make_older(path, 2)
    s = await SQLiteStore.open(path)
    try:
        assert await s.identity() is None
        await s.open_crawl("spider", "{}", fresh=False, identity="adopted", depth_limit=None)
        assert await s.identity() == "adopted"
    finally:
        await s.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                            "'requests_parked'").fetchone()[0] == 1
