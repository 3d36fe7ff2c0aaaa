"""Schema 4 keeps a failure's kind in a column of its own. A file of schema 3, which kept
it as the text before a colon of the error, is read as it is (changing nothing), and
upgraded when a crawl opens it to write: both see the same kinds and messages."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from crawler.cli import stats as stats_mod
from storage import Completion, Failure, NewRequest, Retry, StoredCookie
from storage.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.oldschema import make_older

NOW = 1_000_000.0
FAILURES = [("timeout", "no answer in 30s"), ("timeout", "again"),
            ("callback", "ValueError: x: y (at a.py:3 in parse)")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _crawl(path: Path) -> None:
    store = await SQLiteStore.open(path)
    try:
        await store.open_crawl("s", "{}", fresh=False)
        await store.add([NewRequest(f"http://h/{i}") for i in range(7)])
        leases = await store.claim(7, NOW)
        for lease, (kind, error) in zip(leases, FAILURES, strict=False):
            await store.record(Failure(lease.id, kind, error, 504))
        await store.record(Completion(leases[3].id, 200))
        await store.record(Retry(leases[4].id, NOW, "timeout: slow"))
        await store.record(Failure(leases[5].id, "robots", "unreachable"))
        await store.record(Failure(leases[6].id, "unused", "unused"))
        await store.finish_run("interrupted")
    finally:
        await store.close()


def _as_schema_3(path: Path) -> None:
    """What the crawler of schema 3 wrote: "kind: details" in the error column, and, from
    still older versions, an error without a colon and a failure without words."""
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE requests SET error = kind || ': ' || error WHERE state = 3")
        conn.execute("UPDATE requests SET error = 'robots.txt unreachable' WHERE kind = 'robots'")
        conn.execute("UPDATE requests SET error = NULL WHERE kind = 'unused'")
    conn.close()
    make_older(path, 3)


# An error without a colon was robots.txt's: its kind is "robots", as new failures have it.
EXPECTED_KINDS = {"timeout": 2, "callback": 1, "robots": 1, "unknown": 1}
EXPECTED_FAILURES = [  # most recent first: (kind, message)
    (None, None), ("robots", "robots.txt unreachable"),
    ("callback", "ValueError: x: y (at a.py:3 in parse)"), ("timeout", "again"),
    ("timeout", "no answer in 30s")]
# What `crawl stats` shows, as before the kind had a column of its own.
EXPECTED_LINES = [None, "robots: robots.txt unreachable",
                  "callback: ValueError: x: y (at a.py:3 in parse)", "timeout: again",
                  "timeout: no answer in 30s"]


async def _view(store: SQLiteStore) -> tuple[dict[str, int], list[tuple[str | None, ...]],
                                             list[str | None]]:
    breakdown = await store.breakdown()
    failures = [(f.kind, f.error) for f in await store.failures(10)]
    shown = await stats_mod.gather(store, failures=10)
    return dict(breakdown.errors), failures, [f["error"] for f in shown["recent_failures"]]


async def test_a_new_file_keeps_kind_and_message_apart(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    await _crawl(path)
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT kind, error FROM requests ORDER BY id").fetchall()
    conn.close()
    assert rows[:3] == FAILURES
    # Only a failure has a kind: a retry keeps its last error in words, a done row none.
    assert rows[3] == (None, None) and rows[4] == (None, "timeout: slow")
    store = await SQLiteStore.open(path, readonly=True)
    try:
        kinds, failures, lines = await _view(store)
    finally:
        await store.close()
    assert kinds == {"timeout": 2, "callback": 1, "robots": 1, "unused": 1}
    assert failures[2:] == [(k, e) for k, e in reversed(FAILURES)]
    assert lines[2:] == [f"{k}: {e}" for k, e in reversed(FAILURES)]


async def test_a_schema_3_file_is_read_as_it_is_and_upgraded_to_write(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await _crawl(path)
    _as_schema_3(path)
    before = digest(path)

    reader = await SQLiteStore.open(path, readonly=True)
    try:
        assert await _view(reader) == (EXPECTED_KINDS, EXPECTED_FAILURES, EXPECTED_LINES)
        assert await reader.cookies() == []  # kept no session then
    finally:
        await reader.close()
    assert digest(path) == before, "reading changed the file"

    writer = await SQLiteStore.open(path)
    try:
        info = await writer.open_crawl("s", "{}", fresh=False)
        assert info.resumed and info.counts.failed == 5
        assert await _view(writer) == (EXPECTED_KINDS, EXPECTED_FAILURES, EXPECTED_LINES)
        await writer.finish_run("finished")
    finally:
        await writer.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (7,)
        assert conn.execute("SELECT count(*) FROM cookies").fetchone() == (0,)
        rows = conn.execute("SELECT state, kind, error FROM requests ORDER BY id").fetchall()
    conn.close()
    assert rows[0] == (3, "timeout", "no answer in 30s")
    assert rows[2] == (3, "callback", "ValueError: x: y (at a.py:3 in parse)")
    assert rows[4] == (0, None, "timeout: slow"), "a queued row's words are left as they are"
    assert rows[5] == (3, "robots", "robots.txt unreachable")


async def test_the_cookies_kept_are_written_by_the_next_commit(tmp_path: Path) -> None:
    path = tmp_path / "jar.db"
    cookie = StoredCookie("sid", "1", "a.test", "/", None, False, True, True)

    async def stored() -> list[StoredCookie]:
        reader = await SQLiteStore.open(path, readonly=True)
        try:
            return await reader.cookies()
        finally:
            await reader.close()

    store = await SQLiteStore.open(path)
    try:
        await store.open_crawl("s", "{}", fresh=False)
        store.keep_cookies([cookie])
        assert await stored() == []  # no I/O until a commit
        await store.flush()
        assert await stored() == [cookie]
        store.keep_cookies([])  # the jar as it is now, not added to what was kept
        await store.flush()
        assert await stored() == []
    finally:
        await store.close()
