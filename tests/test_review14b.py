"""Second review of issue 14's last fixes (schema 4, txid_status, gone()), against a real
PostgreSQL (tests/pg.py). Which fail on main (73919a8) is said on each test."""

from __future__ import annotations

import asyncio
import os

import pytest

from storage import Completion, StateLocked, open_store
from storage.postgres import PostgresStore, runs
from storage.postgres.schema import SCHEMA_VERSION
from storage.postgres.session import Session
from tests import pg
from tests.test_host_leases import on, process
from tests.test_review14 import reply_lost
from tests.test_store_reconnect import NOW, cut, rows


async def _old_crawl(pg_url: str, postgres: pg.Cluster) -> None:
    """A crawl as schema 3 left it: no requests_due index, version 3."""
    async with process(pg_url) as a:
        await a.add(on("h", 3))
    rows(postgres, pg_url, "DROP INDEX S.requests_due")
    rows(postgres, pg_url, "UPDATE S.crawl_version SET version = 3")


async def _join(pg_url: str) -> PostgresStore:
    store = await open_store(pg_url)
    assert isinstance(store, PostgresStore)
    store.plan(4)
    try:
        await store.open_crawl("spider", "{}", fresh=False)
    except BaseException:
        await store.close()
        raise
    return store


async def test_two_processes_joining_a_schema_3_crawl_at_once_both_start(
        pg_url: str, postgres: pg.Cluster) -> None:
    # FAILED ON MAIN. Migration 3 -> 4 is CREATE INDEX IF NOT EXISTS: CREATE INDEX takes
    # a SHARE lock on the table, which does not keep a second CREATE INDEX out, so both
    # see no index, and the second's catalogue row collides with the first's when that one
    # commits (unique violation on pg_class): the second process fails to start. Migration
    # 2 said so itself ("two processes joining an old crawl at once may both migrate it").
    for _ in range(3):
        await _old_crawl(pg_url, postgres)
        joined = await asyncio.gather(*(_join(pg_url) for _ in range(3)),
                                      return_exceptions=True)
        failed = [j for j in joined if isinstance(j, BaseException)]
        for store in joined:
            if isinstance(store, PostgresStore):
                await store.close()
        assert failed == [], failed
    version = rows(postgres, pg_url, "SELECT version FROM S.crawl_version")
    assert version == str(SCHEMA_VERSION)


def _no_such_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid -= 1


async def test_a_process_on_another_machine_of_the_same_hostname_is_not_taken_for_gone(
        pg_url: str, postgres: pg.Cluster) -> None:
    # FAILED ON MAIN. gone() took a run for this machine's when its hostname matched,
    # and for provably gone when its pid is free here. A hostname is not a machine:
    # cloned VMs ("ubuntu", "localhost"), containers with the host's network (its
    # hostname, their own pids). A process there cut off for a moment (its run's lock
    # gone with the connection) had its hosts set free at once by a process starting
    # here, which sent to them while it still did: two processes on one host.
    async with process(pg_url) as a:
        await a.add(on("h", 4))
        first = await a.claim(2, NOW)
        assert len(first) == 2 and a.sharing.held == frozenset({"h"})
        # a is another machine's process of the same hostname: its pid is none of ours.
        run = a._run_id
        assert run is not None
        runs.OPEN.discard((a._schema, run))
        rows(postgres, pg_url, f"UPDATE S.runs SET pid = {_no_such_pid()},"
             f" machine = 'another-boot/4026531836' WHERE id = {run}")
        cut(postgres, a)
        async with process(pg_url) as b:
            taken = await b.claim(10, NOW + 60)
            assert taken == [], "b holds a host that a, alive elsewhere, renewed just now"
        runs.OPEN.add((a._schema, run))


async def test_a_run_whose_start_commit_reply_was_lost_holds_its_lock(
        pg_url: str, postgres: pg.Cluster) -> None:
    # FAILED ON MAIN. The start's COMMIT went through, its reply was lost: txid_status
    # says so, and the run is the one started (not started again). But its lock was taken
    # on the connection lost, and the new one's revive did not know the run yet: the run
    # lived without its lock. The next process to start took it for crashed, took its
    # leased requests back (its outcomes fenced, refetched) and `others_live` missed it.
    store = await open_store(pg_url)
    assert isinstance(store, PostgresStore)
    try:
        with reply_lost(store) as happened:
            await store.open_crawl("spider", "{}", fresh=False)
        assert happened
        # Started once (run again, it started a second run: review14 found that).
        assert rows(postgres, pg_url, "SELECT count(*) FROM S.runs") == "1"
        await store.add(on("h", 2))
        leased = await store.claim(10, NOW)
        assert len(leased) == 2
        async with process(pg_url) as b:
            assert await b.sharing.others_live(b._run_id)
        status = rows(postgres, pg_url, f"SELECT status FROM S.runs WHERE id = {store._run_id}")
        assert status == "running"
        for request in leased:
            await store.record(Completion(request.id, 200))
        await store.flush()
        assert store.sharing.fenced == 0
    finally:
        await store.close()


async def test_fresh_is_refused_while_a_process_taken_for_crashed_may_still_run(
        pg_url: str, postgres: pg.Cluster) -> None:
    # FAILED ON MAIN. a is cut off for a moment; b starts and marks a's run 'crashed' (its
    # requests back, its hosts kept: a may still be sending). maybe_alive() looked only at
    # runs 'running', so a --fresh then emptied the crawl under a, which comes back to a
    # crawl that is no more (and RESTART IDENTITY gives its run id to another).
    async with process(pg_url) as a:
        await a.add(on("h", 2))
        assert len(await a.claim(10, NOW)) == 2
        cut(postgres, a)
        async with process(pg_url):
            pass  # b: takes a for crashed, ends its own run
        fresh = await open_store(pg_url)
        try:
            with pytest.raises(StateLocked):
                await fresh.open_crawl("spider", "{}", fresh=True)
        finally:
            await fresh.close()


async def test_a_claim_in_doubt_whose_outcome_cannot_be_asked_leaves_nothing_leased_unseen(
        pg_url: str, postgres: pg.Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    # FAILED ON MAIN. The claim's COMMIT went through, its reply was lost, and txid_status
    # could not say so (the new connection lost too as it asked): the claim runs again and
    # leases others, and `tentative` now names only those. The first try's requests stayed
    # leased to the run, unseen by it: the host never idle, nothing fetched them until the
    # run ended (the test of review 14 for a claim in doubt, when the question fails).
    async def cannot_tell(self: Session, xid: int | None) -> bool:
        return False

    monkeypatch.setattr(Session, "_went_through", cannot_tell)
    async with process(pg_url, hosts=1) as a:
        await a.add(on("h", 2))
        with reply_lost(a) as happened:
            got = await a.claim(1, NOW)
        assert happened and len(got) == 1
        await a.record(Completion(got[0].id, 200))
        await a.flush()
        leased = rows(postgres, pg_url, "SELECT count(*) FROM S.requests WHERE state = 1")
        assert leased == "0", "a request leased to the run that the run never saw"
        again = await a.claim(10, NOW)
        assert len(again) == 1, "the other request is not to be had"
