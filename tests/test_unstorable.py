"""Data that cannot be stored fails its own request, never the commit of the others.

A lone surrogate ("\\ud800", which JSON APIs do send) is a Python string that no UTF-8 text
can hold. Left to reach SQLite, it failed the group commit it was in, went back into the
pending batch, failed every commit after it, and killed every resume on the same page.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from crawler import CrawlStatus, Request, Response, Spider, SpiderError
from storage import (
    Completion,
    Failure,
    NewRequest,
    Outcome,
    RequestState,
    Retry,
)
from storage.sqlite import SQLiteStore
from tests.crawling import crawl, titled_pages_app
from tests.sites.serve import serve

DONE, FAILED, QUEUED = RequestState.DONE, RequestState.FAILED, RequestState.QUEUED
LONE = "\ud800"


class Unstorable(Spider):
    name = "unstorable"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for n in range(20):
            yield response.follow(f"/p/{n}", self.parse_page)
        yield response.follow("/bad-item", self.parse_bad_item)
        yield response.follow("/bad-kwargs", self.parse_bad_kwargs)
        yield response.follow("/raises", self.parse_raises)

    async def parse_page(self, response: Response) -> AsyncIterator[Any]:
        yield {"page": response.url}

    async def parse_bad_item(self, response: Response) -> AsyncIterator[Any]:
        yield {"page": response.url}
        yield {"page": response.url, "title": f"a{LONE}b"}

    async def parse_bad_kwargs(self, response: Response) -> AsyncIterator[Any]:
        yield response.follow("/never", self.parse_page, cb_kwargs={"s": LONE})

    async def parse_raises(self, response: Response) -> AsyncIterator[Any]:
        raise ValueError(f"odd text {LONE} on the page")
        yield  # an async generator


async def test_a_lone_surrogate_fails_its_request_alone_and_the_crawl_resumes(
        tmp_path: Path) -> None:
    state = tmp_path / "u.db"
    async with serve(titled_pages_app()) as base:
        out = await crawl(Unstorable([base + "/"]), state)
        assert out.result.status is CrawlStatus.FINISHED
        assert sorted(i["page"] for i in out.items) == sorted(f"{base}/p/{n}" for n in range(20))
        bad_item = out.rows[f"{base}/bad-item"]
        assert bad_item[0] == FAILED, bad_item
        assert "surrogate" in (bad_item[2] or ""), bad_item
        assert "title" in (bad_item[2] or ""), f"the reason does not name the field: {bad_item}"
        bad_kwargs = out.rows[f"{base}/bad-kwargs"]
        assert bad_kwargs[0] == FAILED, bad_kwargs
        assert "cb_kwargs" in (bad_kwargs[2] or "") and "surrogate" in (bad_kwargs[2] or "")
        assert f"{base}/never" not in out.rows
        raises = out.rows[f"{base}/raises"]
        assert raises[0] == FAILED, raises
        assert "odd text \\ud800 on the page" in (raises[2] or ""), raises
        assert out.result.counts.failed == 3
        # A resume opens, finds nothing left to do and ends well; so does --retry-failed's
        # second go at the same pages.
        again = await crawl(Unstorable([base + "/"]), state)
        assert again.result.status is CrawlStatus.FINISHED
        assert again.rows == out.rows and again.items == out.items


# -- the store's own guard: a bad outcome fails its request, the others commit -------------


async def test_the_store_fails_an_unstorable_outcome_and_commits_the_rest(
        tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await SQLiteStore.open(path)
    try:
        await store.open_crawl("s", "{}", fresh=False)
        urls = [f"http://127.0.0.1/{n}" for n in range(8)]
        await store.add([NewRequest(u) for u in urls])
        ids = {r.url: r.id for r in await store.claim(8, time.time())}
        good = [json.dumps({"n": n}) for n in range(3)]
        # The store is handed bad data directly, past the crawler's own checks.
        outcomes: list[Outcome] = [
            Completion(ids[urls[0]], 200, good[:2], [NewRequest("http://127.0.0.1/new")]),
            Completion(ids[urls[1]], 200, ['{"t":"' + LONE + '"}']),
            Completion(ids[urls[2]], 200, good[2:]),
            Completion(ids[urls[3]], 200, (), [NewRequest("http://127.0.0.1/k", "cb",
                                                          '{"s":"' + LONE + '"}')]),
            Completion(ids[urls[4]], 200, (), [NewRequest("http://127.0.0.1/p", priority=2**70)]),
            Failure(ids[urls[5]], "callback", f"ValueError: {LONE}", 200),
            Retry(ids[urls[6]], 0.0, f"protocol: {LONE}"),
            # urls[7] is left leased: finishing the run gives it back untouched.
        ]
        for outcome in outcomes:
            await store.record(outcome)
        await store.flush()  # one batch, one commit
        counts = await store.counts()
        await store.finish_run("finished")
    finally:
        await store.close()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = {url: (state, error) for url, state, error
                in conn.execute("SELECT url, state, coalesce(kind || ': ', '') || error"
                                " FROM requests")}
        items = [d for (d,) in conn.execute("SELECT data FROM items ORDER BY id")]
    assert items == good
    assert rows[urls[0]] == (DONE, None) and rows[urls[2]] == (DONE, None)
    assert rows["http://127.0.0.1/new"] == (QUEUED, None)
    for n in (1, 3, 4, 5, 6):
        state, error = rows[urls[n]]
        assert state == FAILED, (n, rows[urls[n]])
        assert error is not None and error.startswith("store:"), (n, error)
    assert "surrogate" in (rows[urls[1]][1] or "")
    assert "too large" in (rows[urls[4]][1] or "")
    assert rows[urls[7]] == (QUEUED, None)
    assert {"http://127.0.0.1/k", "http://127.0.0.1/p"}.isdisjoint(rows)
    # The counts kept in memory agree with the rows.
    assert (counts.done, counts.failed, counts.items) == (2, 5, 3)


def test_a_priority_the_state_file_cannot_hold_fails_where_the_request_is_made() -> None:
    # In the store it would fail the page after its links were counted as seen, and links
    # other pages make to the same URLs would be lost as duplicates.
    for priority in (2**63, -(2**63) - 1, 2**70):
        with pytest.raises(SpiderError, match="signed 64-bit"):
            Request("http://a.test/", priority=priority)
    with pytest.raises(SpiderError, match="whole number"):
        Request("http://a.test/", priority=1.5)  # type: ignore[arg-type]
    assert Request("http://a.test/", priority=2**63 - 1).priority == 2**63 - 1
