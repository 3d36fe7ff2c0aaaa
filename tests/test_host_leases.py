"""Host leases on the PostgreSQL store, at the store level (no HTTP): two stores on one crawl
are two processes. A process claims only requests of hosts it holds; a lease that runs out
is taken over and the old holder's outcome is fenced (nothing of it stored); renewal keeps a
lease; a host handed back keeps its holder's remaining delay as its gate."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from storage import Completion, NewRequest, open_store
from storage.postgres import PostgresStore

NOW = 1_000_000.0


@contextlib.asynccontextmanager
async def process(url: str, *, hosts: int = 16) -> AsyncIterator[PostgresStore]:
    store = await open_store(url)
    assert isinstance(store, PostgresStore) and store.shared
    store.plan(hosts)
    await store.open_crawl("spider", "{}", fresh=False)
    try:
        yield store
    finally:
        await store.close()


def on(host: str, n: int) -> list[NewRequest]:
    return [NewRequest(f"http://{host}/{i}") for i in range(n)]


def host_of(url: str) -> str:
    return url.split("/")[2]


async def test_a_process_claims_only_requests_of_hosts_it_holds(pg_url: str) -> None:
    async with process(pg_url, hosts=1) as a, process(pg_url, hosts=1) as b:
        await a.add(on("h1", 3) + on("h2", 3))
        got_a = await a.claim(10, NOW)
        got_b = await b.claim(10, NOW)
        assert len(got_a) == len(got_b) == 3
        assert len({host_of(r.url) for r in got_a}) == 1
        assert {host_of(r.url) for r in got_a} != {host_of(r.url) for r in got_b}
        assert a.sharing.held | b.sharing.held == {"h1", "h2"}
        assert await a.claim(10, NOW) == [] and await b.claim(10, NOW) == []
        # New work for a held host goes to its holder only.
        (mine,) = a.sharing.held
        await b.add([NewRequest(f"http://{mine}/new")])
        assert await b.claim(10, NOW) == []
        assert [r.url for r in await a.claim(10, NOW)] == [f"http://{mine}/new"]


async def test_an_expired_lease_is_taken_over_and_the_late_outcome_fenced(pg_url: str) -> None:
    url = pg_url + "&lease=0.4&renew=0"
    async with process(url) as a, process(url) as b:
        await a.add(on("h", 1))
        (first,) = await a.claim(5, NOW)
        assert await b.claim(5, NOW) == []  # a holds h
        await asyncio.sleep(0.6)
        assert await a.renew() == set()  # renewal off: a does not see it coming
        (again,) = await b.claim(5, NOW)  # taken over: the request is queued again, b's
        assert again.id == first.id
        await a.record(Completion(first.id, 200, items=['{"by":"a"}'],
                                  requests=on("h-from-a", 2), counters={"pages": 1}))
        await a.flush()
        assert a.sharing.fenced == 1
        await b.record(Completion(again.id, 200, items=['{"by":"b"}'], counters={"pages": 1}))
        await b.flush()
        assert b.sharing.fenced == 0
        counts = await b.counts()
        assert (counts.done, counts.items, counts.queued) == (1, 1, 0)
        assert counts.counters == {"pages": 1}
        assert [item async for item in b.items()] == ['{"by":"b"}']


async def test_renewal_keeps_a_lease_longer_than_its_term(pg_url: str) -> None:
    url = pg_url + "&lease=0.6"
    async with process(url) as a, process(url) as b:
        await a.add(on("h", 2))
        (first, _) = await a.claim(5, NOW)
        for _ in range(6):  # 1.2 s: twice the lease
            await asyncio.sleep(a.lease / 3)
            assert await a.renew() == set()
        assert await b.claim(5, NOW) == []
        await a.record(Completion(first.id, 200))
        await a.flush()
        assert a.sharing.fenced == 0


async def test_renewal_says_which_hosts_were_lost(pg_url: str) -> None:
    url = pg_url + "&lease=0.3"
    async with process(url) as a, process(url) as b:
        await a.add(on("h", 1) + on("k", 1))
        assert len(await a.claim(5, NOW)) == 2
        await asyncio.sleep(0.5)
        assert len(await b.claim(5, NOW)) == 2  # both run out: b has them now
        assert await a.renew() == {"h", "k"}
        assert a.sharing.held == frozenset()


async def test_hand_back_keeps_the_holders_delay_as_the_gate(pg_url: str) -> None:
    async with process(pg_url) as a, process(pg_url) as b:
        await a.add(on("h", 1))
        (first,) = await a.claim(5, NOW)
        await a.hand_back({"h": 5.0})  # leased: kept
        assert a.sharing.held == {"h"}
        await a.record(Completion(first.id, 200, requests=[NewRequest("http://h/later")]))
        await a.hand_back({"h": 5.0})  # something due: kept
        assert a.sharing.held == {"h"}
        (later,) = await a.claim(5, NOW)
        await a.record(Completion(later.id, 200))
        await a.hand_back({"h": 2.0})  # idle: given back, not to be fetched for 2 s
        assert a.sharing.held == frozenset()
        await a.add([NewRequest("http://h/last")])
        (last,) = await b.claim(5, NOW)
        assert 1.5 < last.wait <= 2.0
        assert b.sharing.held == {"h"}


async def test_a_gone_process_leaves_its_hosts_and_requests_to_the_next(pg_url: str) -> None:
    a = await open_store(pg_url)
    await a.open_crawl("spider", "{}", fresh=False)
    await a.add(on("h", 3))
    assert len(await a.claim(5, NOW)) == 3
    await a.close()  # no finish_run: the server lets go of its run's lock
    async with process(pg_url) as b:
        runs = await b.runs()
        assert [r.status for r in runs] == ["crashed", "running"]
        assert len(await b.claim(5, NOW)) == 3


async def test_hosts_lost_are_named_as_the_crawler_names_them(pg_url: str) -> None:
    # The database keeps an IPv6 address bracketed, as in the URL; the crawler's frontier
    # keys name it bare: a lost host must be found there, or its work is still sent.
    async with process(pg_url) as a:
        lost: list[set[str]] = []
        a.watch(lost.append)
        await a.add([NewRequest("http://[::1]:8080/x"), NewRequest("http://H.test/y")])
        assert len(await a.claim(5, NOW)) == 2
        a.abandon()
        assert lost == [{"::1", "h.test"}]
