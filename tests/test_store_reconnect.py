"""The PostgreSQL store when its connection is lost mid-crawl, at the store level (two stores
on one crawl are two processes): it connects again with backoff and runs the interrupted
work again, nothing lost or stored twice; it takes its run's lock again and learns which of
its hosts went to another process meanwhile; it gives up, in words without the password,
when the server stays away longer than `?reconnect=`; and `abandon()` lets go of all it holds.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from storage import Completion, StoreError
from storage.postgres import PostgresStore
from tests import pg
from tests.test_host_leases import on, process

NOW = 1_000_000.0


def cut(postgres: pg.Cluster, store: PostgresStore) -> None:
    """End the store's connection from the server's side, as a restart would."""
    pid = store._conn.get_server_pid()
    assert postgres.psql(f"SELECT pg_terminate_backend({pid})").strip() == "t"


def rows(postgres: pg.Cluster, url: str, sql: str) -> str:
    crawl = url.split("crawl=")[1].split("&", maxsplit=1)[0]
    return postgres.psql(sql.replace("S.", f'"crawl_{crawl}".'), "crawls").strip()


async def test_a_lost_connection_is_made_again_and_the_work_done_once(
        pg_url: str, postgres: pg.Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "storage")
    async with process(pg_url) as a:
        await a.add(on("h", 3))
        cut(postgres, a)
        leased = await a.claim(10, NOW)  # runs on a new connection
        assert len(leased) == 3
        cut(postgres, a)
        for request in leased:
            await a.record(Completion(request.id, 200, items=[f'"{request.url}"']))
        await a.flush()  # the group commit's connection was cut: committed on the next one
        cut(postgres, a)
        counts = await a.counts()  # a read, too
        assert (counts.done, counts.items, counts.leased) == (3, 3, 0)
        assert a._transactions.reconnects == 3
    assert rows(postgres, pg_url, "SELECT count(*) FROM S.items") == "3"
    said = caplog.text
    assert "lost the connection" in said and "connected to" in said
    assert pg.PASSWORD not in said


async def test_the_run_lives_on_when_another_found_it_gone(pg_url: str,
                                                             postgres: pg.Cluster) -> None:
    # The connection cut lets go of the run's lock: a process starting meanwhile takes the
    # run for dead and its requests back, but not its hosts (it may only be cut off, and
    # still sending): those go when their leases run out, or when it comes back and finds
    # it was taken for dead. Connected again, it holds nothing old.
    async with process(pg_url) as a:
        lost: list[set[str]] = []
        a.watch(lost.append)
        await a.add(on("h", 2))
        first, second = await a.claim(10, NOW)
        cut(postgres, a)
        async with process(pg_url) as b:
            assert await b.claim(10, NOW + 60) == []  # h is a's until its lease runs out
            await a.record(Completion(first.id, 200, items=['"late"']))
            await a.flush()  # connects again: the outcome is no longer a's to store
            assert lost == [{"h"}] and a.sharing.held == frozenset()
            assert a.sharing.fenced == 1
            assert await b.sharing.others_live(b._run_id)
            taken = await b.claim(10, NOW + 60)  # let go of by a: b waits its delay first
            assert {r.url for r in taken} == {first.url, second.url}
            for request in taken:
                await b.record(Completion(request.id, 200, items=['"b"']))
            await b.flush()
    assert rows(postgres, pg_url, "SELECT string_agg(data, ',') FROM S.items") == '"b","b"'
    assert rows(postgres, pg_url, "SELECT count(*) FROM S.runs WHERE status = 'crashed'") == "0"


async def test_leases_the_database_kept_are_kept(pg_url: str, postgres: pg.Cluster) -> None:
    async with process(pg_url) as a:
        lost: list[set[str]] = []
        a.watch(lost.append)
        await a.add(on("h", 2))
        (first, _) = await a.claim(10, NOW)
        cut(postgres, a)
        await a.record(Completion(first.id, 200))
        await a.flush()
        assert lost == [] and a.sharing.held == frozenset({"h"})
        assert a.sharing.fenced == 0
        assert (await a.counts()).done == 1


async def test_a_request_the_database_says_is_ours_but_we_never_saw_goes_back(
        pg_url: str, postgres: pg.Cluster) -> None:
    # A claim whose commit went through as the connection broke: its requests are leased
    # to the run in the database, and nowhere in the process. They go back to the queue.
    async with process(pg_url, hosts=1) as a, process(pg_url) as b:
        await a.add(on("h", 1) + on("k", 1))
        (mine,) = await a.claim(1, NOW)
        rows(postgres, pg_url, "UPDATE S.requests SET state = 1, run = "
             f"{a._run_id} WHERE state = 0")
        cut(postgres, a)
        await a.counts()  # connected again: the unknown one is queued
        assert rows(postgres, pg_url, "SELECT count(*) FROM S.requests WHERE state = 0") == "1"
        await a.record(Completion(mine.id, 200))
        await a.flush()
        assert a.sharing.fenced == 0
        assert len(await b.claim(10, NOW + 60)) == 1


async def test_abandoned_hosts_and_requests_go_back(pg_url: str) -> None:
    async with process(pg_url) as a, process(pg_url) as b:
        lost: list[set[str]] = []
        a.watch(lost.append)
        await a.add(on("h", 2))
        (first,) = await a.claim(1, NOW)
        a.abandon()
        assert lost == [{"h"}] and a.sharing.held == frozenset()
        assert await b.claim(10, NOW) == []  # the database has not been told yet
        assert await a.renew() == set()  # told now, with a's next statement
        assert len(await b.claim(10, NOW)) == 2  # the host, and what a had of it
        await a.record(Completion(first.id, 200))  # abandoned in flight: not a's now
        await a.flush()
        assert a.sharing.fenced == 1


async def test_a_server_away_too_long_is_an_error_without_the_password() -> None:
    with pg.cluster() as postgres:
        url = postgres.url_for(pg.crawl_name()) + "&reconnect=1"
        async with process(url) as a:
            await a.add(on("h", 1))
            postgres.pg_ctl("stop", "-m", "immediate")
            with pytest.raises(StoreError) as caught:
                await a.add(on("k", 1))
            said = str(caught.value)
            assert "could not connect again in 1 s" in said, said
            assert pg.PASSWORD not in said and a.location in said
            postgres.pg_ctl("start")


async def test_a_server_restarted_is_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "storage")
    with pg.cluster() as postgres:
        url = postgres.url_for(pg.crawl_name())
        async with process(url) as a:
            await a.add(on("h", 1))
            postgres.pg_ctl("stop", "-m", "immediate")
            later = asyncio.get_running_loop().run_in_executor(
                None, lambda: (__import__("time").sleep(1.5), postgres.pg_ctl("start")))
            await a.add(on("k", 1))  # waits for the server, then goes on
            await later
            assert (await a.counts()).queued == 2
