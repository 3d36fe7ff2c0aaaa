"""Second review of issue 14's last fixes (schema 4, txid_status, gone()), against a real
PostgreSQL (tests/pg.py). Which fail on main (73919a8) is said on each test."""

from __future__ import annotations

import asyncio

from storage import open_store
from storage.postgres import PostgresStore
from tests import pg
from tests.test_host_leases import on, process
from tests.test_store_reconnect import rows


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
    assert rows(postgres, pg_url, "SELECT version FROM S.crawl_version") == "4"
