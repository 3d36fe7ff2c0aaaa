"""Unit tests of `storage.sqlite.SQLiteStore` on real temporary files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import (
    Completion,
    NewRequest,
    NotAStateFile,
    RequestState,
    Retry,
    SchemaMismatch,
    SpiderMismatch,
    StateLocked,
    StoreError,
)
from storage.sqlite import MAX_PENDING_NEW, SQLiteStore, fingerprint

NOW = 1_000_000.0
FAR = 1e12


def urls(n: int, prefix: str = "http://h/") -> list[NewRequest]:
    return [NewRequest(f"{prefix}{i}") for i in range(n)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "crawl.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SQLiteStore]:
    s = await SQLiteStore.open(path)
    await s.open_crawl("spider", '{"k":1}', fresh=False)
    try:
        yield s
    finally:
        await s.close()


async def items_of(s: SQLiteStore) -> list[str]:
    return [item async for item in s.items()]


def file_bytes(path: Path) -> bytes:
    return path.read_bytes()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def is_file(path: Path) -> bool:
    return path.is_file()


def write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the file with a separate plain sqlite3 connection (what another reader sees)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# -- opening ----------------------------------------------------------------------------------


async def test_open_crawl_on_a_new_file(path: Path) -> None:
    assert not is_file(path)
    s = await SQLiteStore.open(path)
    try:
        info = await s.open_crawl("spider", "{}", fresh=False)
        assert info.resumed is False
        assert info.reclaimed == 0
        assert info.run_id >= 1
        assert (info.counts.queued, info.counts.done, info.counts.items) == (0, 0, 0)
        assert await s.spider_name() == "spider"
    finally:
        await s.close()
    assert is_file(path)


async def test_close_twice_is_safe(path: Path) -> None:
    s = await SQLiteStore.open(path)
    await s.open_crawl("spider", "{}", fresh=False)
    await s.close()
    await s.close()


# -- add / claim ------------------------------------------------------------------------------


def test_fingerprints_never_change() -> None:
    # State files hold them: a change would make every resumed crawl fetch its pages again.
    assert fingerprint("http://h/a") == -6792865360714233030
    assert fingerprint("https://example.org/") != fingerprint("https://example.org")


async def _transaction_under_way(store: SQLiteStore, pages: int) -> asyncio.Task[None]:
    """Record `pages` completions with 50 new requests each, and start their flush; returns
    once that transaction has taken them and is writing."""
    await store.add(urls(pages, "http://h/page"))
    for lease in await store.claim(pages, NOW):
        await store.record(Completion(lease.id, 200, items=['{"a":1}'],
                                      requests=urls(50, f"{lease.url}/")))
    task = asyncio.create_task(store.flush())
    for _ in range(100_000):
        if store._ledger.applying:  # taken, not yet committed
            return task
        await asyncio.sleep(0)
    raise AssertionError("the flush never started writing")


async def test_flush_waits_for_a_transaction_already_under_way(store: SQLiteStore,
                                                              path: Path) -> None:
    # A flush must make every outcome recorded before it durable, including those another
    # caller's transaction has taken and not yet committed.
    writing = await _transaction_under_way(store, 200)
    await store.flush()
    assert writing.done()
    assert rows(path, "SELECT count(*) FROM requests WHERE state = 2") == [(200,)]


async def test_reads_never_see_a_transaction_half_done(store: SQLiteStore) -> None:
    writing = await _transaction_under_way(store, 200)
    counts = await store.counts()
    assert writing.done()
    assert (counts.done, counts.items, counts.queued) == (200, 200, 200 * 50)
    assert counts == store.tally()


# -- outcomes ---------------------------------------------------------------------------------


async def test_outcomes_that_found_many_requests_are_committed_early(store: SQLiteStore,
                                                                     path: Path) -> None:
    # The batch is bounded by the requests it holds, not only by its outcomes: 512 pages
    # of a thousand long links each must not wait in memory for one commit.
    await store.add(urls(3))
    leases = await store.claim(3, NOW)
    per_page = MAX_PENDING_NEW // 2
    for n, lease in enumerate(leases[:2]):
        await store.record(Completion(lease.id, 200, requests=urls(per_page, f"http://h/{n}/")))
    assert rows(path, f"SELECT count(*) FROM requests WHERE state = {RequestState.DONE}") \
        == [(2,)]
    await store.record(Completion(leases[2].id, 200, requests=urls(10, "http://h/x/")))
    assert rows(path, f"SELECT count(*) FROM requests WHERE state = {RequestState.DONE}") \
        == [(2,)]  # a small outcome waits for the next commit, as before


async def test_a_failing_batch_stores_nothing(store: SQLiteStore) -> None:
    await store.add(urls(2))
    a, b = await store.claim(2, NOW)
    await store.record(Completion(a.id, 200, items=['{"ok":1}']))
    bad = NewRequest(None)  # type: ignore[arg-type]  # cannot be stored
    await store.record(Completion(b.id, 200, items=['{"bad":1}'], requests=[bad]))
    with pytest.raises((AttributeError, TypeError, sqlite3.Error)):
        await store.flush()
    counts = await store.counts()
    assert (counts.done, counts.leased, counts.items) == (0, 2, 0)
    # The buffered outcomes are kept (and keep failing): a close still tries them.
    with contextlib.suppress(Exception):
        await store.close()


# -- reopening ------------------------------------------------------------------------------


async def test_reopen_after_connection_dropped_without_finish(path: Path) -> None:
    s = await SQLiteStore.open(path)
    await s.open_crawl("spider", "{}", fresh=False)
    await s.add(urls(2))
    await s.claim(2, NOW)
    # Simulate a killed process: the connection and the lock go away, nothing else runs.
    await s._conn.close()
    assert s._lock_fd is not None
    os.close(s._lock_fd)
    s._lock_fd = None
    s._closed = True

    s2 = await SQLiteStore.open(path)
    try:
        info = await s2.open_crawl("spider", "{}", fresh=False)
        assert (info.resumed, info.reclaimed) == (True, 2)
        assert info.counts.queued == 2
    finally:
        await s2.close()


# -- locking, read-only, foreign files ------------------------------------------------------


async def test_second_writer_is_refused_while_first_is_open(path: Path) -> None:
    first = await SQLiteStore.open(path)
    await first.open_crawl("spider", "{}", fresh=False)
    try:
        with pytest.raises(StateLocked) as info:
            await SQLiteStore.open(path)
        assert str(path) in str(info.value)
    finally:
        await first.close()
    second = await SQLiteStore.open(path)  # free again once the first is closed
    await second.close()


async def test_reader_may_open_while_writer_runs(path: Path) -> None:
    writer = await SQLiteStore.open(path)
    try:
        await writer.open_crawl("spider", "{}", fresh=False)
        await writer.add(urls(4))
        reader = await SQLiteStore.open(path, readonly=True)
        try:
            assert (await reader.counts()).queued == 4
            assert await reader.spider_name() == "spider"
        finally:
            await reader.close()
    finally:
        await writer.close()


async def test_readonly_open_of_missing_file_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "missing.db"
    with pytest.raises(NotAStateFile):
        await SQLiteStore.open(target, readonly=True)
    assert listing(tmp_path) == []


async def test_readonly_store_refuses_writes(path: Path) -> None:
    s = await SQLiteStore.open(path)
    await s.open_crawl("spider", "{}", fresh=False)
    await s.add(urls(1))
    await s.close()
    before = file_bytes(path)

    r = await SQLiteStore.open(path, readonly=True)
    try:
        with pytest.raises(StoreError):
            await r.open_crawl("spider", "{}", fresh=False)
        with pytest.raises(StoreError):
            await r.add(urls(1, "http://other/"))
        with pytest.raises(StoreError):
            await r.claim(1, NOW)
        with pytest.raises(StoreError):
            await r.record(Retry(1, NOW, "e"))
        with pytest.raises(StoreError):
            await r.finish_run("x")
        assert (await r.counts()).queued == 1
    finally:
        await r.close()
    assert file_bytes(path) == before


async def test_other_spider_is_refused_and_file_left_byte_identical(path: Path) -> None:
    s = await SQLiteStore.open(path)
    await s.open_crawl("spider", "{}", fresh=False)
    await s.add(urls(3))
    await s.finish_run("finished")
    await s.close()
    before = file_bytes(path)
    files = listing(path.parent)

    for fresh in (False, True):
        other = await SQLiteStore.open(path)
        try:
            with pytest.raises(SpiderMismatch) as info:
                await other.open_crawl("another", "{}", fresh=fresh)
            assert "spider" in str(info.value)
            assert "another" in str(info.value)
        finally:
            await other.close()
    assert file_bytes(path) == before
    assert listing(path.parent) == files


async def test_non_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    write_bytes(target, b"just some text, not a database\n")
    for readonly in (False, True):
        with pytest.raises(NotAStateFile):
            await SQLiteStore.open(target, readonly=readonly)
    assert file_bytes(target) == b"just some text, not a database\n"
    assert listing(tmp_path) == ["notes.txt"]


async def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    target = tmp_path / "other.db"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = file_bytes(target)
    with pytest.raises(NotAStateFile):
        await SQLiteStore.open(target)
    assert file_bytes(target) == before


async def test_newer_schema_is_refused(path: Path) -> None:
    s = await SQLiteStore.open(path)
    await s.open_crawl("spider", "{}", fresh=False)
    await s.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    before = file_bytes(path)
    with pytest.raises(SchemaMismatch, match="newer"):
        await SQLiteStore.open(path)
    assert file_bytes(path) == before


async def test_operations_before_open_crawl_are_refused(path: Path) -> None:
    s = await SQLiteStore.open(path)
    try:
        with pytest.raises(StoreError, match="open_crawl"):
            await s.claim(1, NOW)
        with pytest.raises(StoreError, match="open_crawl"):
            await s.record(Retry(1, NOW, "e"))
    finally:
        await s.close()


@pytest.mark.parametrize("name", ["crawl#1.db", "what?.db", "100%25.db", "a b.db"])
async def test_state_file_names_with_uri_characters(tmp_path: Path, name: str) -> None:
    # Paths are file names, not URIs: '#', '?' and '%' must not change which file is opened.
    target = tmp_path / name
    s = await SQLiteStore.open(target)
    await s.open_crawl("spider", "{}", fresh=False)
    await s.add(urls(2))
    await s.finish_run("finished")
    await s.close()

    reader = await SQLiteStore.open(target, readonly=True)
    try:
        assert (await reader.counts()).queued == 2
    finally:
        await reader.close()
    writer = await SQLiteStore.open(target)
    try:
        info = await writer.open_crawl("spider", "{}", fresh=False)
        assert (info.resumed, info.counts.queued) == (True, 2)
    finally:
        await writer.close()
    assert listing(tmp_path) == [name]  # no stray file named after part of the path


async def test_foreign_database_with_hash_in_name_is_refused_untouched(tmp_path: Path) -> None:
    target = tmp_path / "other#1.db"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = file_bytes(target)
    with pytest.raises(NotAStateFile):
        s = await SQLiteStore.open(target)
        await s.close()
    assert file_bytes(target) == before
