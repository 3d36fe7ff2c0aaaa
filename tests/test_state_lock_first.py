"""A second crawl on a state file a crawl is running on is refused by the running crawl's
lock, at once and in those words: before it reads the file, which that crawl may hold
SQLite locks on (a reader would wait on them, then find a finished crawl)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

from crawler.cli.exits import EXIT_USAGE
from storage.sqlite import SQLiteStore
from tests.helpers import crawl


async def test_a_running_crawls_lock_refuses_a_second_before_it_reads_the_file(
        tmp_path: Path) -> None:
    state = tmp_path / "busy.db"
    store = await SQLiteStore.open(state)
    await store.open_crawl("site", "{}", fresh=False)
    await store.close()
    before = state.read_bytes()
    # What a running crawl holds: the file's lock and, mid-commit, SQLite's own.
    fd = os.open(state, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    conn = sqlite3.connect(state)
    try:
        # Exclusive locking mode: no other connection may even read (as when a crawl's
        # checkpoint or a writer blocks readers for a moment, a moment that can last).
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        proc = crawl("site", "http://127.0.0.1:9/", "--state", str(state), cwd=tmp_path)
    finally:
        conn.rollback()
        conn.close()
        os.close(fd)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "another crawl is running" in proc.stderr, proc.stderr
    assert state.read_bytes() == before
