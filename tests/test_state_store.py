"""`crawler.engine.state`: the one place storage's errors become the crawler's. Refusals are
`StateFileError`s (exit 2), failures while crawling `StateWriteError`s (exit 1), on real
state files: a foreign one, a locked one, one of another spider, and a full disk."""

from __future__ import annotations

import hashlib
import inspect
import json
import shlex
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crawler.engine.state import StateStore, open_state
from crawler.errors import CrawlError, StateFileError, StateWriteError
from storage import (
    Completion,
    NewRequest,
    NotAStateFile,
    Retry,
    SpiderMismatch,
    StateLocked,
    Store,
    StoreError,
)
from storage.sqlite import SQLiteStore
from tests.helpers import EXIT_USAGE, crawl, describe

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_000_000.0


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_method_of_the_store_is_wrapped() -> None:
    # A method the interface gains and the wrapper forgets would let storage's errors out.
    abstract = {name for name, member in vars(Store).items()
                if getattr(member, "__isabstractmethod__", False)}
    assert abstract and abstract <= set(vars(StateStore))
    source = inspect.getsource(StateStore)
    sharing = {"renew", "hand_back"}  # storage.sharable's methods that do I/O
    assert sharing <= set(vars(StateStore))
    assert source.count("except StoreError") == len(abstract - {"location"} | sharing)


async def test_a_foreign_file_is_refused_as_a_state_file_error(tmp_path: Path) -> None:
    target = tmp_path / "notes.db"
    target.write_bytes(b"not a database at all\n" * 100)
    before = digest(target)
    for readonly in (False, True):
        with pytest.raises(StateFileError, match="not a crawl state file") as info:
            await open_state(str(target), readonly=readonly)
        assert isinstance(info.value.__cause__, NotAStateFile)
    assert digest(target) == before


async def test_a_locked_file_and_another_spider_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = await open_state(str(path))
    try:
        await first.open_crawl("spider", "{}", fresh=False)
        with pytest.raises(StateFileError, match="another crawl is running") as info:
            await open_state(str(path))
        assert isinstance(info.value.__cause__, StateLocked)
    finally:
        await first.close()
    other = await open_state(str(path))
    try:
        with pytest.raises(StateFileError, match="spider 'spider', not 'other'") as refused:
            await other.open_crawl("other", "{}", fresh=False)
        assert isinstance(refused.value.__cause__, SpiderMismatch)
    finally:
        await other.close()


async def test_writes_a_store_refuses_are_state_write_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await open_state(str(path))
    try:
        with pytest.raises(StateWriteError, match="open_crawl"):
            store.tally()  # no run open yet
        info = await store.open_crawl("spider", "{}", fresh=False)
        assert await store.add([NewRequest("http://h/1")]) == 1
        (lease,) = await store.claim(1, NOW)
        await store.record(Completion(lease.id, 200, items=['{"a":1}']))
        await store.finish_run("finished")
        assert info.run_id == 1 and (await store.counts()).done == 1
    finally:
        await store.close()
    reader = await open_state(str(path), readonly=True)
    try:
        assert [item async for item in reader.items()] == ['{"a":1}']
        with pytest.raises(StateWriteError, match="read-only") as info_ro:
            await reader.record(Retry(1, NOW, "e"))
        assert isinstance(info_ro.value.__cause__, StoreError)
        assert not isinstance(info_ro.value, StateFileError)
    finally:
        await reader.close()
    assert StateStore.of(reader) is reader  # wrapped once, however often it is handed on


# Runs in a mount namespace of its own (root), on a tmpfs of 320 KiB that fills up.
FULL_DISK = """
import asyncio, json, subprocess, sys
from crawler.engine.state import open_state
from crawler.errors import StateFileError, StateWriteError
from storage import Completion, NewRequest

async def main(disk):
    path = f"{disk}/s.db"
    store = await open_state(path)
    await store.open_crawl("spider", "{}", fresh=False)
    await store.add([NewRequest(f"http://h/{i}") for i in range(2000)])
    caught = None
    try:
        for lease in await store.claim(2000, 1e12):
            await store.record(Completion(lease.id, 200, items=["x" * 2000]))
        await store.flush()
    except Exception as exc:  # what the engine would see
        caught = exc
    try:
        await store.close()
    except StateWriteError:
        pass  # its flush meets the full disk again; the file is closed all the same
    subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
    again = await open_state(path)  # room again: the crawl resumes
    info = await again.open_crawl("spider", "{}", fresh=False)
    await again.close()
    print(json.dumps({"type": type(caught).__name__,
                      "refusal": isinstance(caught, StateFileError),
                      "cause": type(caught.__cause__).__name__ if caught else None,
                      "message": str(caught), "resumed": info.resumed,
                      "queued": info.counts.queued + info.counts.done}))

asyncio.run(main(sys.argv[1]))
"""


def test_a_full_disk_while_crawling_is_a_state_write_error(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    q = shlex.quote(str(disk))
    script = (f"set -e; mount -t tmpfs -o size=320k crawl-test {q}; "
              f'exec "{sys.executable}" -c {shlex.quote(textwrap.dedent(FULL_DISK))} {q}')
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True,
                          text=True, timeout=60, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert (got["type"], got["refusal"], got["cause"]) == ("StateWriteError", False,
                                                            "StoreError"), got
    assert "the disk is full" in got["message"] and str(disk) in got["message"], got
    assert got["resumed"] and got["queued"] == 2000, got
    assert issubclass(StateWriteError, CrawlError)



async def _a_crawl_in(path: Path) -> None:
    store = await SQLiteStore.open(path)
    await store.open_crawl("s", "{}", fresh=False)
    await store.add([NewRequest("http://h/a"), NewRequest("http://h/b")])
    await store.flush()
    await store.close()


@pytest.mark.parametrize(("damage", "command"), [
    ("DROP TABLE counters", "stats"),
    ("DROP TABLE items", "stats"),
    ("DROP TABLE items", "export"),
])
async def test_a_file_whose_reads_fail_is_refused_in_words_not_with_a_traceback(
        tmp_path: Path, damage: str, command: str) -> None:
    path = tmp_path / "damaged.db"
    await _a_crawl_in(path)
    conn = sqlite3.connect(path)
    conn.execute(damage)
    conn.commit()
    conn.close()
    # The store's own reads, and the boundary that makes them the crawler's errors...
    reader = await open_state(str(path), readonly=True)
    with pytest.raises(StateFileError, match="damaged"):
        await (reader.counts() if command == "stats" else _first_item(reader))
    await reader.close()
    # ...and what a user sees: one line and exit 2.
    out = ("-o", str(tmp_path / "o.jsonl")) if command == "export" else ()
    proc = crawl(command, str(path), *out)
    assert proc.returncode == EXIT_USAGE, describe(proc)
    assert "damaged" in proc.stderr and "Traceback" not in proc.stderr, describe(proc)


async def _first_item(store: Store) -> str | None:
    async for item in store.items():
        return item
    return None
