"""Whole crawls against real local servers: the page set, callbacks, redirects, failures."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from crawler import CrawlConfig, Crawler, CrawlStatus, Response, Spider
from crawler.policy import frontier
from spiders.books import BooksSpider
from spiders.site import SiteSpider
from storage import RequestState
from storage.sqlite import SQLiteStore
from tests.crawling import FAST, crawl, titled_pages_app
from tests.sites import books, generated
from tests.sites.serve import serve

DONE, FAILED = RequestState.DONE, RequestState.FAILED


async def test_site_spider_finds_exactly_the_expected_pages(tmp_path: Path) -> None:
    app = generated.make_app()
    async with serve(app) as base:
        out = await crawl(SiteSpider([base + "/"]), tmp_path / "s.db")
        expected = generated.expected_pages(base)
        non_html = generated.non_html_urls(base)
        broken = generated.broken_urls(base)
    assert out.result.status is CrawlStatus.FINISHED
    urls = [i["url"] for i in out.items]
    assert len(urls) == len(set(urls)), "a page was stored twice"
    got = {i["url"]: (i["title"], i["links"], i["status"]) for i in out.items}
    assert got == {u: (e.title, e.links, 200) for u, e in expected.items()}
    assert len(expected) >= 2000
    # Each page fetched once; nothing off-site; non-HTML recorded but not parsed.
    fetched = app[generated.REQUESTS]
    assert max(fetched.values()) == 1
    assert app[generated.FOREIGN_REQUESTS] == []
    for url in non_html:
        assert out.rows[url][:2] == (DONE, 200)
    for url in broken:
        assert out.rows[url][:2] == (DONE, 404)
    counters = out.result.counts.counters
    assert counters["skipped_non_html"] == len(non_html)
    assert counters["skipped_offsite"] > 0
    assert counters["skipped_duplicate"] > 0
    assert counters["skipped_invalid_url"] > 0  # mailto:, javascript:, tel:, ftp: hrefs


async def test_example_books_spider_scrapes_every_book(tmp_path: Path) -> None:
    app = books.make_app()
    async with serve(app) as base:
        spider = BooksSpider([base + "/"])
        out = await crawl(spider, tmp_path / "b.db", FAST)
    assert out.result.status is CrawlStatus.FINISHED
    got = [{k: i[k] for k in ("title", "price", "stock", "upc")} for i in out.items]
    expected = books.expected_books()
    assert sorted(got, key=lambda b: str(b["upc"])) == sorted(expected, key=lambda b: str(b["upc"]))
    # cb_kwargs survive the state file: each book knows which list page led to it.
    pages = Counter(i["list_page"] for i in out.items)
    assert pages == {n: 20 for n in range(1, 6)}


class Raising(Spider):
    name = "raising"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for i in range(6):
            yield response.follow(f"/page/{i}", self.parse_page, cb_kwargs={"i": i})

    async def parse_page(self, response: Response, i: int) -> AsyncIterator[Any]:
        yield {"i": i, "first": True}
        if i % 3 == 0:
            raise ValueError(f"cannot parse page {i}")
        yield {"i": i, "first": False}


async def test_a_raising_callback_fails_its_request_and_the_crawl_goes_on(tmp_path: Path) -> None:
    async with serve(titled_pages_app()) as base:
        out = await crawl(Raising([base + "/"]), tmp_path / "r.db")
    assert out.result.status is CrawlStatus.FINISHED
    # Items of a failed callback are not stored, not even those yielded before the error.
    assert sorted((i["i"], i["first"]) for i in out.items) == sorted(
        (i, first) for i in (1, 2, 4, 5) for first in (True, False)
    )
    for i in (0, 3):
        state, status, error, _ = out.rows[f"{base}/page/{i}"]
        assert (state, status) == (FAILED, 200)
        assert error is not None
        assert f"ValueError: cannot parse page {i}" in error
        assert "parse_page" in error
    assert out.result.counts.failed == 2


class LinksThenRaises(Spider):
    """/bad links to /target, then raises; /good links to /target too, later."""

    name = "links-then-raises"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield response.follow("/bad", self.parse_bad)
        yield response.follow("/good", self.parse_good, priority=-1)  # after /bad

    async def parse_bad(self, response: Response) -> AsyncIterator[Any]:
        yield response.follow("/target", self.parse_target)
        raise ValueError("broken page")

    async def parse_good(self, response: Response) -> AsyncIterator[Any]:
        yield response.follow("/target", self.parse_target)

    async def parse_target(self, response: Response) -> AsyncIterator[Any]:
        yield {"target": response.url}


async def test_a_link_from_a_failed_callback_is_still_followed_from_elsewhere(
        tmp_path: Path) -> None:
    # The failed callback's requests are dropped with it; /target must not be taken for a
    # duplicate of a request that was never stored.
    config = CrawlConfig(delay=0.0, per_host=1, workers=1, retry_backoff=0.05)
    async with serve(titled_pages_app()) as base:
        out = await crawl(LinksThenRaises([base + "/"]), tmp_path / "l.db", config)
    assert out.rows[f"{base}/bad"][0] == FAILED
    assert out.rows[f"{base}/target"][0] == DONE
    assert out.items == [{"target": f"{base}/target"}]


def _trap_app() -> web.Application:
    """Redirect chains and loops, flaky and failing endpoints."""
    hits: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        hits[path] += 1
        if path == "/":
            links = ["/r/1", "/chain/0", "/loop/a", "/away", "/flaky", "/down", "/big",
                     "/missing", "/slow", "/bad-location", "/skip-me", "/huge-header", "/cut",
                     "/bad-gzip"]
            return web.Response(text="".join(f'<a href="{h}">x</a>' for h in links),
                                content_type="text/html")
        if path.startswith("/r/"):  # /r/1 -> /r/2 -> /r/3 -> /final
            n = int(path.rsplit("/", 1)[1])
            raise web.HTTPFound("/final" if n == 3 else f"/r/{n + 1}")
        if path.startswith("/chain/"):  # longer than any hop limit
            raise web.HTTPMovedPermanently(f"/chain/{int(path.rsplit('/', 1)[1]) + 1}")
        if path == "/loop/a":
            raise web.HTTPFound("/loop/b")
        if path == "/loop/b":
            raise web.HTTPFound("/loop/a")
        if path == "/away":
            raise web.HTTPFound("http://other.invalid/")
        if path == "/bad-location":
            return web.Response(status=302, headers={"Location": "http://[::1/"})
        if path == "/flaky" and hits[path] <= 2:
            return web.Response(status=503, headers={"Retry-After": "0"})
        if path == "/down":
            return web.Response(status=500)
        if path == "/big":
            return web.Response(body=b"<p>" + b"x" * 300_000, content_type="text/html")
        if path == "/missing":
            return web.Response(status=404, text="<title>nope</title>", content_type="text/html")
        if path == "/slow":
            await asyncio.sleep(5)
        if path == "/bad-gzip":  # declared gzip, but is not: the same bytes every time
            return web.Response(body=b"not gzip" * 50, headers={
                "Content-Encoding": "gzip", "Content-Type": "text/html"})
        if path == "/huge-header":
            return web.Response(text="<title>h</title>", content_type="text/html",
                                headers={"X-Huge": "h" * 20_000})
        if path == "/cut":  # promises 100 kB, sends 10 bytes, hangs up
            resp = web.StreamResponse(headers={"Content-Type": "text/html"})
            resp.content_length = 100_000
            await resp.prepare(request)
            await resp.write(b"<title>cu")
            assert request.transport is not None
            request.transport.close()
            return resp
        return web.Response(text=f"<title>{path}</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def test_redirects_retries_and_failures_are_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The 503s and 500s slow the host down (1 s, 2 s, 4 s): what is checked here is what
    # is stored, not that penalty (test_backoff's), so it is cut short.
    monkeypatch.setattr(frontier, "FIRST_PENALTY", 0.05)
    config = CrawlConfig(delay=0, per_host=8, workers=8, max_redirects=5, max_retries=2,
                         retry_backoff=0.01, max_body=100_000, timeout=1.0, read_timeout=1.0)
    async with serve(_trap_app()) as base:
        out = await crawl(SiteSpider([base + "/"]), tmp_path / "t.db", config)
    rows = out.rows
    titles = {i["url"]: i["title"] for i in out.items}
    assert out.result.status is CrawlStatus.FINISHED
    # Each hop is its own row; the target gets the page's item.
    for hop in ("/r/1", "/r/2", "/r/3"):
        assert rows[base + hop][:2] == (DONE, 302)
    assert titles[base + "/final"] == "/final"
    # A chain longer than the hop limit fails at the hop that exceeds it.
    chain = [rows[f"{base}/chain/{n}"] for n in range(6)]
    assert [r[0] for r in chain[:5]] == [DONE] * 5
    assert chain[5][0] == FAILED and chain[5][2] is not None and "redirects" in chain[5][2]
    assert f"{base}/chain/6" not in rows
    # A loop ends at dedup; off-site and malformed redirect targets are skipped, counted.
    assert rows[base + "/loop/a"][:2] == (DONE, 302)
    assert rows[base + "/loop/b"][:2] == (DONE, 302)
    assert out.result.counts.counters["skipped_offsite"] >= 1
    assert out.result.counts.counters["skipped_invalid_url"] >= 1
    # 503 twice then 200: retried and stored once; 500 forever: fails after the retries.
    assert rows[base + "/flaky"][:2] == (DONE, 200) and rows[base + "/flaky"][3] == 2
    assert titles[base + "/flaky"] == "/flaky"
    down = rows[base + "/down"]
    assert down[0] == FAILED and down[1] == 500 and down[3] == 3
    assert down[2] is not None and "HTTP 500" in down[2] and "gave up after 3" in down[2]
    big = rows[base + "/big"]
    assert big[0] == FAILED and big[2] is not None and big[2].startswith("too_large")
    assert rows[base + "/missing"][:2] == (DONE, 404)
    assert base + "/missing" not in titles
    slow = rows[base + "/slow"]
    assert slow[0] == FAILED and slow[2] is not None and slow[2].startswith("timeout")
    # Oversized headers are the client's refusal, not a server status.
    huge = rows[base + "/huge-header"]
    assert (huge[0], huge[1]) == (FAILED, None)
    assert huge[2] is not None and huge[2].startswith("bad_response")
    bad_gzip = rows[base + "/bad-gzip"]
    assert bad_gzip[0] == FAILED and bad_gzip[3] == 1, "an undecodable body is not retried"
    assert bad_gzip[2] is not None and bad_gzip[2].startswith("bad_response")
    cut = rows[base + "/cut"]
    assert cut[0] == FAILED and cut[3] == 3
    assert cut[2] is not None and cut[2].startswith("protocol")


async def test_dead_host_fails_with_a_connect_error(tmp_path: Path) -> None:
    # A port that was just free: nothing listens there.
    async with serve(titled_pages_app()) as base:
        pass
    config = CrawlConfig(delay=0, max_retries=1, retry_backoff=0.01, obey_robots=False)
    out = await crawl(SiteSpider([base + "/"]), tmp_path / "d.db", config)
    state, status, error, attempts = out.rows[base + "/"]
    assert (state, status, attempts) == (FAILED, None, 2)
    assert error is not None and error.startswith("connect:")
    assert out.result.status is CrawlStatus.FINISHED
    # Obeying robots.txt, the host is found dead at its robots.txt: the page is deferred
    # (not retried) while robots.txt is tried again, then fails with the cause.
    robots_on = CrawlConfig(delay=0, max_retries=1, retry_backoff=0.01)
    out = await crawl(SiteSpider([base + "/"]), tmp_path / "r.db", robots_on)
    state, status, error, attempts = out.rows[base + "/"]
    assert (state, status, attempts) == (FAILED, None, 1)
    assert error is not None and error.startswith("connect:")
    assert "robots.txt" in error and "gave up after 2 tries" in error


async def test_unresolvable_name_fails_with_a_dns_error(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 2606); the resolver answers NXDOMAIN without a server.
    config = CrawlConfig(delay=0, max_retries=0, resolve={"good.test": "127.0.0.1"})
    out = await crawl(SiteSpider(["http://nowhere.invalid/"]), tmp_path / "n.db", config)
    state, _, error, _ = out.rows["http://nowhere.invalid/"]
    assert state == FAILED
    assert error is not None and error.startswith("connect:")


async def test_depth_and_page_limits(tmp_path: Path) -> None:
    app = generated.make_app()
    async with serve(app) as base:
        shallow = await crawl(SiteSpider([base + "/"]), tmp_path / "a.db",
                              CrawlConfig(delay=0, per_host=8, max_depth=1))
        limited = await crawl(SiteSpider([base + "/"]), tmp_path / "b.db",
                              CrawlConfig(delay=0, per_host=8, max_pages=100))
        rest = await crawl(SiteSpider([base + "/"]), tmp_path / "b.db",
                           CrawlConfig(delay=0, per_host=8))
        expected = generated.expected_pages(base)
    depths = {url: row for url, row in shallow.rows.items()}
    assert shallow.result.status is CrawlStatus.FINISHED
    assert shallow.result.counts.counters["skipped_depth"] > 0
    assert 1 < len(depths) < len(expected)
    assert limited.result.status is CrawlStatus.PAGE_LIMIT
    assert limited.result.counts.finished == 100
    assert limited.result.counts.queued > 0
    # Raising the limit (here: none) resumes the same crawl to the exact full page set.
    assert rest.result.status is CrawlStatus.FINISHED
    assert rest.result.run.resumed
    urls = [i["url"] for i in rest.items]
    assert len(urls) == len(set(urls))
    assert set(urls) == set(expected)


class BadYield(Spider):
    name = "bad-yield"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield "just a string"


async def test_yielding_something_that_is_not_an_item_fails_clearly(tmp_path: Path) -> None:
    async with serve(titled_pages_app()) as base:
        out = await crawl(BadYield([base + "/"]), tmp_path / "y.db")
    state, _, error, _ = out.rows[base + "/"]
    assert state == FAILED
    assert error is not None and "yield dicts, dataclass instances or Requests" in error


async def test_fresh_starts_over(tmp_path: Path) -> None:
    app = books.make_app(books=30)
    async with serve(app) as base:
        first = await crawl(BooksSpider([base + "/"]), tmp_path / "f.db")
        again = await crawl(BooksSpider([base + "/"]), tmp_path / "f.db", fresh=True)
    assert len(first.items) == len(again.items) == 30
    assert not again.result.run.resumed


class FailThenChain(Spider):
    """Five pages whose callbacks fail, then a chain discovered one page at a time."""

    name = "fail-then-chain"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for i in range(5):
            yield response.follow(f"/fail/{i}", self.parse_fail, priority=1)
        yield response.follow("/chain/0", self.parse_chain)

    async def parse_fail(self, response: Response) -> AsyncIterator[Any]:
        raise RuntimeError("this page always fails")
        yield  # pragma: no cover

    async def parse_chain(self, response: Response) -> AsyncIterator[Any]:
        n = int(response.url.rsplit("/", 1)[1])
        yield {"n": n}
        yield response.follow(f"/chain/{n + 1}", self.parse_chain)


async def test_page_limit_is_exact_when_callbacks_fail(tmp_path: Path) -> None:
    # A failed callback is one finished request, counted once against --max-pages.
    config = CrawlConfig(delay=0, per_host=8, workers=4, max_pages=15)
    async with serve(titled_pages_app()) as base:
        out = await crawl(FailThenChain([base + "/"]), tmp_path / "m.db", config)
    assert out.result.status is CrawlStatus.PAGE_LIMIT
    assert out.result.counts.finished == 15
    assert out.result.counts.failed == 5
    assert sorted(i["n"] for i in out.items) == list(range(9))


async def test_stop_is_prompt_while_only_a_delayed_retry_remains(tmp_path: Path) -> None:
    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": "120"})

    app = web.Application()
    app.router.add_get("/", busy)
    config = CrawlConfig(delay=0, max_retries=3)
    async with serve(app) as base:
        store = await SQLiteStore.open(tmp_path / "w.db")
        crawler = Crawler(SiteSpider([base + "/"]), store, config, stop_grace=60)
        run = asyncio.create_task(crawler.run())
        while crawler.metrics.retried == 0:  # noqa: ASYNC110 (a test polling a counter)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the workers are now waiting for the retry to be due
        crawler.stop()
        # Nothing is in flight: the stop must not wait for the grace period or the retry.
        result = await asyncio.wait_for(run, timeout=10)
        await store.close()
    assert result.status is CrawlStatus.INTERRUPTED
    assert result.counts.queued == 1


async def test_a_dead_host_is_given_up_then_retried_later(tmp_path: Path) -> None:
    async with serve(titled_pages_app()) as dead:
        pass  # now nothing listens on that port
    dead_port = URL(dead).port

    async def links(request: web.Request) -> web.Response:
        hrefs = "".join(f'<a href="{dead}/d{i}">d</a>' for i in range(10))
        return web.Response(text=f"<title>live</title>{hrefs}", content_type="text/html")

    live_app = web.Application()
    live_app.router.add_get("/", links)
    config = CrawlConfig(delay=0, per_host=1, max_retries=3, retry_backoff=0.01,
                         dead_after=3, obey_robots=False)

    def spider(live: str) -> SiteSpider:
        site = SiteSpider([live + "/"])
        site.allowed_ports = [dead_port]  # another port of the same host: widened on purpose
        return site

    async with serve(live_app) as live:
        out = await crawl(spider(live), tmp_path / "dead.db", config)
    live_port = URL(live).port
    dead_rows = [row for url, row in out.rows.items() if url.startswith(dead)]
    assert len(dead_rows) == 10 and all(r[0] == FAILED for r in dead_rows)
    assert all(r[2] is not None and "host down" in r[2] for r in dead_rows)
    # Without giving up, 10 URLs x 3 retries; the host was given up after 3 failures.
    assert out.result.stats.retried <= 3
    # The host comes back: --retry-failed queues its requests again, and they succeed.
    async with serve(titled_pages_app(), port=dead_port) as back, \
            serve(live_app, port=live_port):
        assert back == dead
        store = await SQLiteStore.open(tmp_path / "dead.db")
        result = await Crawler(spider(live), store, config, retry_failed=True).run()
        await store.close()
    assert result.counts.failed == 0
    assert result.counts.done == 11


async def test_include_exclude_and_tracking_parameters(tmp_path: Path) -> None:
    async def page(request: web.Request) -> web.Response:
        hrefs = ["/docs/a", "/docs/b?utm_source=x", "/docs/b", "/docs/private/c", "/blog/d",
                 "/docs/e?fbclid=1&v=2"]
        links = "".join(f'<a href="{h}">x</a>' for h in hrefs)
        return web.Response(text=f"<title>{request.path_qs}</title>{links}",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    config = CrawlConfig(delay=0, include=(r"/docs/",), exclude=(r"/private/",),
                         strip_tracking=True, obey_robots=False)
    async with serve(app) as base:
        out = await crawl(SiteSpider([base + "/"]), tmp_path / "i.db", config)
    paths = sorted(url.removeprefix(base) for url in out.rows)
    assert paths == ["/", "/docs/a", "/docs/b", "/docs/e?v=2"]
    counters = out.result.counts.counters
    assert counters["skipped_excluded"] > 0
