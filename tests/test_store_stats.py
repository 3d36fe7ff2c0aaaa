"""The store's side of monitoring: running counts without table scans, stored run statistics,
breakdowns for `crawl stats`, and the upgrade of schema-1 files that had no statistics."""

from __future__ import annotations

import contextlib
import hashlib
import random
import sqlite3
from pathlib import Path

import pytest

from storage import (
    Completion,
    Defer,
    Failure,
    NewRequest,
    Retry,
    SpiderMismatch,
)
from storage.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.oldschema import make_older

NOW = 1_000_000.0


def _same(tally: object, counts: object) -> None:
    assert tally == counts, f"tally {tally} != counts {counts}"


async def test_tally_follows_every_kind_of_write(tmp_path: Path) -> None:
    rng = random.Random(7)
    store = await SQLiteStore.open(tmp_path / "t.db", batch_size=8)
    try:
        await store.open_crawl("s", "{}", fresh=False)
        await store.add([NewRequest(f"http://h/{i}") for i in range(50)])
        for step in range(300):
            leases = await store.claim(rng.randint(0, 6), NOW + step)
            for lease in leases:
                new = [NewRequest(f"http://h/{rng.randint(0, 400)}") for _ in range(3)]
                outcome = rng.choice([
                    Completion(lease.id, 200, items=["{}"] * rng.randint(0, 2), requests=new,
                               counters={"skipped_x": rng.randint(0, 1)}),
                    Failure(lease.id, "timeout", "slow", 504),
                    Retry(lease.id, NOW, "connect: refused"),
                    Defer(lease.id, NOW, "robots"),
                ])
                await store.record(outcome)
                if rng.random() < 0.1:  # a second outcome for one lease: fenced out
                    await store.record(Completion(lease.id, 200, items=["{}"]))
            if step % 25 == 0:
                await store.requeue_failed()
            if step % 10 == 0:
                await store.flush()
                _same(store.tally(), await store.counts())
        await store.finish_run("interrupted")
        counts = await store.counts()
        assert counts.done > 50 and counts.items > 0
    finally:
        await store.close()
    reopened = await SQLiteStore.open(tmp_path / "t.db")
    try:
        info = await reopened.open_crawl("s", "{}", fresh=False)
        _same(reopened.tally(), info.counts)
    finally:
        await reopened.close()


async def test_a_write_that_fails_leaves_the_tally_alone(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "f.db")
    try:
        await store.open_crawl("s", "{}", fresh=False)
        await store.add([NewRequest("http://h/1"), NewRequest("http://h/2")])
        a, b = await store.claim(2, NOW)
        before = store.tally()
        await store.record(Completion(a.id, 200, items=["{}"]))
        bad = NewRequest(None)  # type: ignore[arg-type]  # cannot be stored
        await store.record(Completion(b.id, 200, requests=[bad]))
        with pytest.raises((AttributeError, TypeError, sqlite3.Error)):
            await store.flush()
        _same(store.tally(), before)
        _same(store.tally(), await store.counts())
    finally:
        with contextlib.suppress(Exception):
            await store.close()


async def test_run_statistics_are_stored_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = await SQLiteStore.open(path)
    try:
        await store.open_crawl("s", '{"workers": 2}', fresh=False)
        await store.add([NewRequest("http://h/1")])
        (lease,) = await store.claim(1, NOW)
        await store.record(Completion(lease.id, 200))
        await store.save_stats('{"pages": 1}')
        # Saving flushes: the figures never run ahead of the rows they count.
        assert (await store.counts()).done == 1
        (run,) = await store.runs()
        assert (run.status, run.stats) == ("running", '{"pages": 1}')
        await store.finish_run("error")  # no final figures: the last saved ones stay
        await store.open_crawl("s", "{}", fresh=False)
        await store.finish_run("finished", '{"pages": 0}')
        first, second = await store.runs()
        assert (first.stats, second.stats) == ('{"pages": 1}', '{"pages": 0}')
    finally:
        await store.close()


async def test_breakdown_by_status_and_kind_of_error(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "b.db")
    try:
        await store.open_crawl("s", "{}", fresh=False)
        await store.add([NewRequest(f"http://h/{i}") for i in range(7)])
        leases = await store.claim(7, NOW)
        outcomes = [Completion(leases[0].id, 200), Completion(leases[1].id, 200),
                    Completion(leases[2].id, 404), Failure(leases[3].id, "timeout", "slow"),
                    Failure(leases[4].id, "timeout", "again", None),
                    Failure(leases[5].id, "callback", "ValueError: x", 200),
                    Failure(leases[6].id, "robots", "no colon here")]
        for outcome in outcomes:
            await store.record(outcome)
        await store.flush()
        b = await store.breakdown()
        assert dict(b.statuses) == {200: 2, 404: 1}
        assert dict(b.errors) == {"timeout": 2, "callback": 1, "robots": 1}
    finally:
        await store.close()


async def test_a_schema_1_file_is_read_as_it_is_and_upgraded_to_write(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = await SQLiteStore.open(path)
    await store.open_crawl("s", "{}", fresh=False)
    await store.add([NewRequest("http://h/1"), NewRequest("http://h/2")])
    await store.finish_run("interrupted")
    await store.close()
    make_older(path, 1)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    reader = await SQLiteStore.open(path, readonly=True)
    try:
        (run,) = await reader.runs()
        assert (run.status, run.stats) == ("interrupted", None)
        assert (await reader.counts()).queued == 2
    finally:
        await reader.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "reading changed it"

    other = await SQLiteStore.open(path)  # another spider's crawl: refused, untouched
    try:
        with pytest.raises(SpiderMismatch):
            await other.open_crawl("other", "{}", fresh=False)
    finally:
        await other.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "a refusal changed it"

    writer = await SQLiteStore.open(path)
    try:
        info = await writer.open_crawl("s", "{}", fresh=False)
        assert info.resumed and info.counts.queued == 2
        await writer.save_stats('{"pages": 0}')
        assert [r.stats for r in await writer.runs()] == [None, '{"pages": 0}']
    finally:
        await writer.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        conn.close()
