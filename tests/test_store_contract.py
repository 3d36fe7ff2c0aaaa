"""The store contract: the same tests on the SQLite store and on the PostgreSQL store (a real
server, started by the tests). What one store does, the other does, request for request.

Times handed to a store are wall-clock seconds (`NOW` is long past); the PostgreSQL store
keeps them on the database's clock, as delays from the call, so times read back are equal
to within the time between two calls."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from storage import (
    DUPLICATE_COUNTER,
    Completion,
    Failure,
    NewRequest,
    Retry,
    SpiderMismatch,
    StateLocked,
    Store,
    StoreError,
    open_store,
)

NOW = 1_000_000.0
BACKENDS = ("sqlite", "postgres")


def urls(n: int, prefix: str = "http://h/") -> list[NewRequest]:
    return [NewRequest(f"{prefix}{i}") for i in range(n)]


def about(at: float) -> object:
    return pytest.approx(at, abs=0.5)


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest) -> str:
    """Where a crawl of this test's own is kept: a file, or a schema in the test database."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("tmp_path") / "crawl.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(location: str) -> AsyncIterator[Store]:
    s = await open_store(location)
    await s.open_crawl("spider", '{"k":1}', fresh=False)
    try:
        yield s
    finally:
        await s.close()


@contextlib.asynccontextmanager
async def reader(location: str) -> AsyncIterator[Store]:
    """What another process reading the crawl sees."""
    r = await open_store(location, readonly=True)
    try:
        yield r
    finally:
        await r.close()


async def items_of(s: Store) -> list[str]:
    return [item async for item in s.items()]


# -- add / claim ------------------------------------------------------------------------------


async def test_add_dedups_exact_urls_and_is_idempotent(store: Store) -> None:
    batch = [NewRequest("http://h/a"), NewRequest("http://h/b"), NewRequest("http://h/a")]
    assert await store.add(batch) == 2
    assert await store.add(batch) == 0
    assert await store.add([NewRequest("http://h/b"), NewRequest("http://h/c")]) == 1
    # Exact strings: the store does not canonicalise.
    assert await store.add([NewRequest("http://h/A"), NewRequest("http://h/a/")]) == 2
    assert await store.add([]) == 0
    assert (await store.counts()).queued == 5


async def test_requests_with_a_method_or_a_body_dedup_by_them(store: Store) -> None:
    get = NewRequest("http://h/form")
    post = get._replace(method="POST", body=b"q=1")
    assert await store.add([get, post, post._replace(body=b"q=2")]) == 3
    assert await store.add([post, get._replace(unique=True), get._replace(unique="s")]) == 2
    assert await store.add([get._replace(unique="s")]) == 0
    claimed = await store.claim(10, NOW)
    assert [(r.method, r.body) for r in claimed][:3] == [
        (None, None), ("POST", b"q=1"), ("POST", b"q=2")]


async def test_claim_order_is_priority_then_admission(store: Store) -> None:
    await store.add([
        NewRequest("http://h/low1", priority=0),
        NewRequest("http://h/high1", priority=5),
        NewRequest("http://h/low2", priority=0),
        NewRequest("http://h/mid", priority=1),
        NewRequest("http://h/high2", priority=5),
        NewRequest("http://h/neg", priority=-1),
    ])
    claimed = await store.claim(10, NOW)
    assert [r.url for r in claimed] == [
        "http://h/high1", "http://h/high2", "http://h/mid", "http://h/low1", "http://h/low2",
        "http://h/neg",
    ]


async def test_claim_respects_limit_and_marks_rows_leased(store: Store) -> None:
    await store.add(urls(10))
    first = await store.claim(3, NOW)
    assert [r.url for r in first] == ["http://h/0", "http://h/1", "http://h/2"]
    counts = await store.counts()
    assert (counts.queued, counts.leased) == (7, 3)
    second = await store.claim(100, NOW)
    assert len(second) == 7
    assert not {r.id for r in first} & {r.id for r in second}
    assert await store.claim(5, NOW) == []
    assert await store.claim(0, NOW) == []


async def test_claim_returns_everything_stored_with_the_request(store: Store) -> None:
    await store.add([NewRequest("http://h/x", callback="parse_item", cb_kwargs='{"a":1}',
                                priority=3, depth=2, redirects=1, spec='{"h":1}')])
    (leased,) = await store.claim(1, NOW)
    assert (leased.url, leased.callback, leased.cb_kwargs, leased.priority, leased.depth,
            leased.redirects, leased.attempts, leased.spec) == (
        "http://h/x", "parse_item", '{"a":1}', 3, 2, 1, 0, '{"h":1}')


# -- outcomes ---------------------------------------------------------------------------------


async def test_completion_stores_items_requests_and_done_together(store: Store,
                                                                  location: str) -> None:
    await store.add(urls(2))
    a, b = await store.claim(2, NOW)
    await store.record(Completion(
        a.id, 200,
        items=['{"n":1}', '{"n":2}'],
        requests=[NewRequest("http://h/new1", depth=1, parent=a.id),
                  NewRequest("http://h/1"),  # already has a row: a duplicate
                  NewRequest("http://h/new2", depth=1, parent=a.id),
                  NewRequest("http://h/new1")],  # twice in one completion
        counters={"pages": 1},
    ))
    async with reader(location) as other:
        assert (await other.counts()).items == 0  # buffered: not yet visible to others
        await store.flush()
        assert (await other.counts()).items == 2
    assert await items_of(store) == ['{"n":1}', '{"n":2}']
    counts = await store.counts()
    assert counts.done == 1
    assert counts.leased == 1  # b
    assert counts.queued == 2  # new1, new2
    assert counts.items == 2
    assert counts.counters == {"pages": 1, DUPLICATE_COUNTER: 2}
    assert counts == store.tally()
    new = await store.claim(10, NOW)
    assert [(r.url, r.depth) for r in new] == [("http://h/new1", 1), ("http://h/new2", 1)]
    assert b.id not in {r.id for r in new}


async def test_items_come_back_in_commit_order(store: Store) -> None:
    await store.add(urls(3))
    leases = await store.claim(3, NOW)
    for lease in reversed(leases):
        await store.record(Completion(lease.id, 200, items=[f'"{lease.url}"']))
        await store.flush()
    expected = [f'"{lease.url}"' for lease in reversed(leases)]
    assert await items_of(store) == expected
    after = await store.items_after(0, 2)
    assert [data for _, data in after] == expected[:2]
    rest = await store.items_after(after[-1][0], 10)
    assert [data for _, data in rest] == expected[2:]


async def test_counters_add_up_over_completions(store: Store) -> None:
    await store.add(urls(3))
    for lease in await store.claim(3, NOW):
        await store.record(Completion(lease.id, 200, counters={"pages": 1, "zero": 0}))
    await store.flush()
    assert (await store.counts()).counters == {"pages": 3}


async def test_completion_for_a_request_not_leased_stores_nothing(store: Store) -> None:
    # "Nothing is stored twice": a second completion of the same request (or one for a
    # lease this run does not hold) must not add its items and requests again.
    await store.add(urls(1))
    (lease,) = await store.claim(1, NOW)
    await store.record(Completion(lease.id, 200, items=['{"n":1}']))
    await store.flush()
    await store.record(Completion(lease.id, 200, items=['{"n":1}'],
                                  requests=[NewRequest("http://h/late")]))
    await store.flush()
    counts = await store.counts()
    assert counts.items == 1
    assert counts.queued == 0


async def test_an_outcome_that_cannot_be_stored_fails_alone(store: Store) -> None:
    await store.add(urls(2))
    a, b = await store.claim(2, NOW)
    await store.record(Completion(a.id, 200, items=['{"ok":1}']))
    await store.record(Completion(b.id, 200, items=['{"bad":"\ud800"}']))  # lone surrogate
    await store.flush()
    counts = await store.counts()
    assert (counts.done, counts.failed, counts.items) == (1, 1, 1)
    (failure,) = await store.failures(10)
    assert failure.kind == "store"


async def test_retry_puts_back_with_attempts_and_not_before(store: Store) -> None:
    await store.add(urls(1))
    (lease,) = await store.claim(1, NOW)
    await store.record(Retry(lease.id, not_before=NOW + 30, error="timeout: slow", status=None))
    await store.flush()
    counts = await store.counts()
    assert (counts.queued, counts.leased) == (1, 0)
    assert await store.next_due() == about(NOW + 30)
    assert await store.claim(10, NOW + 29) == []
    (again,) = await store.claim(10, NOW + 31)
    assert again.id == lease.id
    assert again.attempts == 1
    await store.record(Retry(again.id, not_before=NOW + 60, error="http_status: HTTP 503",
                             status=503))
    await store.flush()
    (third,) = await store.claim(10, NOW + 61)
    assert third.attempts == 2


async def test_failure_keeps_the_error(store: Store) -> None:
    await store.add(urls(2))
    a, _ = await store.claim(2, NOW)
    await store.record(Failure(a.id, "connect", "refused", status=None))
    await store.flush()
    counts = await store.counts()
    assert (counts.failed, counts.leased, counts.finished) == (1, 1, 1)
    failures = await store.failures(10)
    assert [(f.url, f.status, f.kind, f.error) for f in failures] == [
        ("http://h/0", None, "connect", "refused")]
    assert (await store.breakdown()).errors == {"connect": 1}
    assert await store.requeue_failed() == 1
    (again,) = await store.claim(10, NOW)
    assert (again.url, again.attempts) == ("http://h/0", 0)


async def test_next_due(store: Store) -> None:
    assert await store.next_due() is None
    await store.add(urls(2))
    due = await store.next_due()
    assert due is not None
    assert due <= NOW
    a, b = await store.claim(2, NOW)
    assert await store.next_due() is None  # nothing queued
    await store.record(Retry(a.id, not_before=NOW + 50, error="e"))
    await store.record(Retry(b.id, not_before=NOW + 20, error="e"))
    await store.flush()
    assert await store.next_due() == about(NOW + 20)


async def test_claim_applies_recorded_outcomes_first(store: Store) -> None:
    await store.add(urls(1))
    (lease,) = await store.claim(1, NOW)
    await store.record(Completion(lease.id, 200, requests=[NewRequest("http://h/next")]))
    (nxt,) = await store.claim(5, NOW)  # no explicit flush
    assert nxt.url == "http://h/next"


async def test_counts(store: Store) -> None:
    await store.add(urls(6))
    leases = await store.claim(4, NOW)
    await store.record(Completion(leases[0].id, 200, items=["{}", "{}", "{}"]))
    await store.record(Failure(leases[1].id, "internal", "bad"))
    await store.record(Retry(leases[2].id, NOW + 1, "again"))
    await store.flush()
    counts = await store.counts()
    assert (counts.queued, counts.leased, counts.done, counts.failed, counts.items) == (
        3, 1, 1, 1, 3)
    assert counts.finished == 2
    assert (await store.breakdown()).statuses == {200: 1}


async def test_parked_requests_wait_for_a_deeper_limit(location: str) -> None:
    s = await open_store(location)
    try:
        await s.open_crawl("spider", "{}", fresh=False, depth_limit=1)
        await s.add(urls(1))
        (lease,) = await s.claim(1, NOW)
        await s.record(Completion(lease.id, 200, parked=[NewRequest("http://h/deep", depth=2)]))
        await s.finish_run("finished")
    finally:
        await s.close()
    s = await open_store(location)
    try:
        info = await s.open_crawl("spider", "{}", fresh=False, depth_limit=2)
        assert (info.counts.parked, info.counts.queued) == (0, 1)
        assert [r.url for r in await s.claim(5, NOW)] == ["http://h/deep"]
    finally:
        await s.close()


async def test_cookies_and_feed_marks_ride_with_the_commits(store: Store) -> None:
    from storage import FeedMark, StoredCookie  # noqa: PLC0415

    jar = [StoredCookie("a", "1", "h", "/", None, False, True, True),
           StoredCookie("b", "2", "h", "/x", 2e9, True, False, False)]
    store.keep_cookies(jar)
    store.keep_feed_mark(FeedMark("/out.jsonl", "jsonl", 3, 120, 42, "x"))
    assert await store.cookies() == []
    await store.flush()
    assert await store.cookies() == jar
    assert (await store.feed_marks())["/out.jsonl"].item == 3
    store.change_cookies([jar[0]._replace(value="9")], [("h", "/x/", "b")])
    await store.flush()
    assert [(c.name, c.value) for c in await store.cookies()] == [("a", "9")]


async def test_finish_run_releases_leases_and_records_status(store: Store) -> None:
    await store.add(urls(3))
    leases = await store.claim(3, NOW)
    await store.record(Completion(leases[0].id, 200))
    await store.save_stats('{"pages":1}')
    await store.finish_run("finished")
    counts = await store.counts()
    assert (counts.done, counts.leased, counts.queued) == (1, 0, 2)
    (run,) = await store.runs()
    assert run.status == "finished"
    assert run.ended is not None and run.ended >= run.started
    assert run.config == '{"k":1}'
    assert run.stats == '{"pages":1}'
    with pytest.raises(StoreError):
        await store.claim(1, NOW)  # no run is open any more


# -- reopening ------------------------------------------------------------------------------


async def test_reopen_sees_everything_and_reclaims_nothing_after_finish(location: str) -> None:
    s = await open_store(location)
    await s.open_crawl("spider", "{}", fresh=False, identity="id-1")
    await s.add(urls(3))
    (a, _b) = await s.claim(2, NOW)
    await s.record(Completion(a.id, 200, items=['{"i":1}'], counters={"pages": 1}))
    await s.finish_run("interrupted")
    await s.close()

    s = await open_store(location)
    try:
        assert await s.identity() == "id-1"
        info = await s.open_crawl("spider", "{}", fresh=False)
        assert info.resumed is True
        assert info.reclaimed == 0
        assert info.run_id == 2
        c = info.counts
        assert (c.queued, c.leased, c.done, c.items) == (2, 0, 1, 1)
        assert c.counters == {"pages": 1}
        assert await items_of(s) == ['{"i":1}']
        assert [r.status for r in await s.runs()] == ["interrupted", "running"]
    finally:
        await s.close()


async def test_reopen_reclaims_leases_of_a_run_that_never_finished(location: str) -> None:
    s = await open_store(location)
    await s.open_crawl("spider", "{}", fresh=False)
    await s.add(urls(5))
    leases = await s.claim(3, NOW)
    await s.record(Completion(leases[0].id, 200, items=['{"x":1}']))
    await s.close()  # no finish_run: as if the process died after its last commit

    s = await open_store(location)
    try:
        info = await s.open_crawl("spider", "{}", fresh=False)
        assert info.resumed is True
        assert info.reclaimed == 2
        assert (info.counts.queued, info.counts.leased, info.counts.done) == (4, 0, 1)
        assert info.counts.items == 1
        assert [r.status for r in await s.runs()] == ["crashed", "running"]
        again = await s.claim(10, NOW)
        assert {r.id for r in again} >= {leases[1].id, leases[2].id}
    finally:
        await s.close()


async def test_fresh_empties_the_crawl(location: str) -> None:
    s = await open_store(location)
    await s.open_crawl("spider", "{}", fresh=False)
    await s.add(urls(3))
    (a,) = await s.claim(1, NOW)
    await s.record(Completion(a.id, 200, items=["{}"], counters={"pages": 1}))
    await s.finish_run("finished")
    await s.close()

    s = await open_store(location)
    try:
        info = await s.open_crawl("spider", "{}", fresh=True)
        assert info.resumed is False
        c = info.counts
        assert (c.queued, c.leased, c.done, c.failed, c.items) == (0, 0, 0, 0, 0)
        assert c.counters == {}
        assert await items_of(s) == []
        assert await s.add(urls(3)) == 3  # the old URLs are new again
    finally:
        await s.close()


# -- who may open a crawl ---------------------------------------------------------------------


async def test_second_writer_is_refused_or_shares_and_readers_see_a_live_crawl(
        location: str) -> None:
    first = await open_store(location)
    try:
        await first.open_crawl("spider", "{}", fresh=False)
        assert await first.live()
        if first.shared:  # PostgreSQL: a second process joins the crawl, but not --fresh
            second = await open_store(location)
            try:
                with pytest.raises(StateLocked):
                    await second.open_crawl("spider", "{}", fresh=True)
                await second.open_crawl("spider", "{}", fresh=False)
                assert [r.status for r in await second.runs()] == ["running", "running"]
            finally:
                await second.close()
        else:
            with pytest.raises(StateLocked):
                await open_store(location)
        async with reader(location) as other:
            assert await other.live()
            assert await other.spider_name() == "spider"
    finally:
        await first.close()
    async with reader(location) as other:
        assert not await other.live()


async def test_other_spider_is_refused(store: Store, location: str) -> None:
    await store.finish_run("finished")
    await store.close()
    s = await open_store(location)
    try:
        with pytest.raises(SpiderMismatch):
            await s.open_crawl("other", "{}", fresh=False)
    finally:
        await s.close()


async def test_readonly_store_refuses_writes(store: Store, location: str) -> None:
    await store.flush()
    async with reader(location) as r:
        with pytest.raises(StoreError):
            await r.open_crawl("spider", "{}", fresh=False)
        with pytest.raises(StoreError):
            await r.add(urls(1))
        with pytest.raises(StoreError):
            await r.claim(1, NOW)


async def test_operations_before_open_crawl_are_refused(location: str) -> None:
    s = await open_store(location)
    try:
        with pytest.raises(StoreError):
            await s.claim(1, NOW)
        with pytest.raises(StoreError):
            await s.record(Retry(1, NOW, "e"))
    finally:
        await s.close()
