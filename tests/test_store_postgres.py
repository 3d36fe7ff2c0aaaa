"""What only the PostgreSQL store has: crawls side by side in one database, URLs that name
them, passwords never shown, a server out of reach, schemas it must not touch."""

from __future__ import annotations

import pytest

from crawler.engine.state import open_state
from crawler.errors import StateFileError
from storage import (
    DatabaseUnavailable,
    NewRequest,
    NotAStateFile,
    Refused,
    SchemaMismatch,
    StoreError,
    name_crawl,
    open_store,
    shown,
)
from storage.locations import Location, schema_name
from tests import pg

NOW = 1_000_000.0


async def start(url: str, pages: int = 3) -> None:
    s = await open_store(url)
    try:
        await s.open_crawl("spider", "{}", fresh=False)
        await s.add([NewRequest(f"http://h/{i}") for i in range(pages)])
        await s.finish_run("finished")
    finally:
        await s.close()


def test_urls_name_crawls_and_hide_passwords() -> None:
    url = "postgresql://me:p%40ss@db:5433/crawls?sslmode=disable"
    named = name_crawl(url, "books.crawl.db")
    assert named == url + "&crawl=books"
    assert name_crawl(named, "other.crawl.db") == named  # the URL's own name wins
    assert name_crawl("books.db", "x.crawl.db") == "books.db"  # a file stays a file
    loc = Location.parse(named)
    assert loc.crawl == "books"
    assert "crawl=" not in loc.dsn and "p%40ss" in loc.dsn
    assert loc.shown == "postgresql://me@db:5433/crawls?sslmode=disable&crawl=books"
    assert loc.redact("bad password p@ss and p%40ss") == "bad password *** and ***"
    assert shown("postgres://u:pw@h/d?password=pw2") == "postgres://u@h/d"
    assert len(schema_name("x" * 200).encode()) <= 63
    assert schema_name("x" * 200) != schema_name("x" * 199 + "y")


async def test_crawls_share_a_database_and_fresh_empties_only_its_own(
        postgres: pg.Cluster) -> None:
    one, two = postgres.url_for(pg.crawl_name()), postgres.url_for(pg.crawl_name())
    await start(one, 3)
    await start(two, 5)
    s = await open_store(one)
    try:
        info = await s.open_crawl("spider", "{}", fresh=True)
        assert info.counts.queued == 0
    finally:
        await s.close()
    r = await open_store(two, readonly=True)
    try:
        assert (await r.counts()).queued == 5
    finally:
        await r.close()


async def test_a_url_naming_no_crawl_reads_the_only_one_or_says_which(
        postgres: pg.Cluster) -> None:
    postgres.psql("CREATE DATABASE lone OWNER crawler")
    base = postgres.url_for().replace("/crawls", "/lone")
    with pytest.raises(NotAStateFile, match="holds no crawl"):
        await open_store(base, readonly=True)
    await start(base + "?crawl=first")
    r = await open_store(base, readonly=True)
    try:
        assert r.location == shown(base) + "?crawl=first"
        assert (await r.counts()).queued == 3
    finally:
        await r.close()
    await start(base + "?crawl=second")
    with pytest.raises(Refused, match=r"2 crawls \(first, second\).*\?crawl=NAME") as caught:
        await open_store(base, readonly=True)
    assert pg.PASSWORD not in str(caught.value)


async def test_a_server_out_of_reach_is_a_clear_refusal_without_the_password() -> None:
    port = pg.free_port()
    url = f"postgresql://crawler:{pg.PASSWORD}@127.0.0.1:{port}/crawls?crawl=x"
    with pytest.raises(DatabaseUnavailable, match=f"cannot connect to postgresql://"
                       f"crawler@127.0.0.1:{port}/crawls") as caught:
        await open_store(url)
    assert pg.PASSWORD not in str(caught.value)
    with pytest.raises(StateFileError) as refused:  # the crawler's exit 2
        await open_state(url)
    assert pg.PASSWORD not in str(refused.value)


async def test_no_such_database_is_refused(postgres: pg.Cluster) -> None:
    url = postgres.url_for("x").replace("/crawls", "/nope")
    with pytest.raises(DatabaseUnavailable, match="nope"):
        await open_store(url)


async def test_a_schema_that_is_not_a_crawl_is_left_untouched(postgres: pg.Cluster) -> None:
    name = pg.crawl_name()
    postgres.psql(f'CREATE SCHEMA "crawl_{name}"; CREATE TABLE "crawl_{name}".mine (x int);'
                  f' INSERT INTO "crawl_{name}".mine VALUES (7);'
                  f' GRANT ALL ON SCHEMA "crawl_{name}" TO crawler', "crawls")
    with pytest.raises(NotAStateFile, match="not a crawl"):
        await open_store(postgres.url_for(name))
    assert postgres.psql(f'SELECT x FROM "crawl_{name}".mine', "crawls").strip() == "7"


async def test_a_newer_schema_is_refused_untouched(pg_url: str, postgres: pg.Cluster) -> None:
    await start(pg_url)
    schema = schema_name(Location.parse(pg_url).crawl or "")
    postgres.psql(f'UPDATE "{schema}".crawl_version SET version = 99', "crawls")
    with pytest.raises(SchemaMismatch, match="schema 99"):
        await open_store(pg_url)
    with pytest.raises(SchemaMismatch):
        await open_store(pg_url, readonly=True)


async def test_a_lost_connection_is_a_store_error_without_the_password(
        pg_url: str, postgres: pg.Cluster) -> None:
    s = await open_store(pg_url + "&reconnect=0")  # not to connect again (test_store_reconnect)
    try:
        await s.open_crawl("spider", "{}", fresh=False)
        postgres.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE usename = 'crawler'")
        with pytest.raises(StoreError) as caught:
            await s.add([NewRequest("http://h/x")])
        assert pg.PASSWORD not in str(caught.value)
        assert s.location in str(caught.value)
    finally:
        await s.close()


async def test_times_are_the_databases(pg_url: str, postgres: pg.Cluster) -> None:
    # A retry 30 s ahead of the client's clock is 30 s ahead of the server's now().
    from storage import Retry  # noqa: PLC0415

    s = await open_store(pg_url)
    try:
        await s.open_crawl("spider", "{}", fresh=False)
        await s.add([NewRequest("http://h/a")])
        (lease,) = await s.claim(1, NOW)
        import time  # noqa: PLC0415

        await s.record(Retry(lease.id, time.time() + 30, "e"))
        await s.flush()
    finally:
        await s.close()
    schema = schema_name(Location.parse(pg_url).crawl or "")
    ahead = postgres.psql(f'SELECT extract(epoch FROM not_before - now()) FROM "{schema}".requests',
                          "crawls")
    assert 28 < float(ahead) <= 30
