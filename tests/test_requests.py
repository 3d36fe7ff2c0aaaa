"""Requests beyond a plain GET, against real local servers: methods, headers, bodies (json=,
data=), cookies, dedup by method + URL + body, dont_filter, redirects of a POST, a resumed
crawl sending the same request, handle_statuses, errbacks, and bad input named at its line."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from yarl import URL

from crawler import CrawlConfig, Crawler, CrawlStatus, Request, RequestFailure, Response, Spider
from crawler.errors import SpiderError
from crawler.model import specs
from crawler.model.specs import MAX_REQUEST_BYTES
from storage import NewRequest, Store
from storage.sqlite import SQLiteStore
from storage.sqlite.writes import fingerprint, request_fingerprint
from tests.crawling import FAST, crawl
from tests.sites.serve import serve

CONFIG = CrawlConfig(delay=0.0, per_host=4, workers=4, retry_backoff=0.01, obey_robots=False)
Seen = list[tuple[str, str, dict[str, str], bytes]]  # method, path, headers, body


def _api(seen: Seen, last_page: int = 3) -> web.Application:
    """POST /api/search takes {"q", "page"} and answers that page's items and whether there
    is a next one; every request the server gets is logged in `seen`."""
    async def record(request: web.Request) -> bytes:
        body = await request.read()
        seen.append((request.method, request.path, dict(request.headers), body))
        return body

    async def search(request: web.Request) -> web.Response:
        query = json.loads(await record(request))
        page = query["page"]
        return web.json_response({"items": [f"{query['q']}-{page}-{n}" for n in range(2)],
                                  "more": page < last_page})

    async def echo(request: web.Request) -> web.Response:
        body = await record(request)
        return web.json_response({"method": request.method, "body": body.decode(),
                                  "cookie": request.headers.get("Cookie")})

    async def moved(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("/echo") if request.path == "/r302" \
            else web.HTTPTemporaryRedirect("/echo")

    async def missing(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=404, text="no such thing")

    app = web.Application()
    app.router.add_post("/api/search", search)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/r302", moved)
    app.router.add_route("*", "/r307", moved)
    app.router.add_get("/missing", missing)
    return app


class SearchAPI(Spider):
    name = "search-api"

    def __init__(self, base: str) -> None:
        super().__init__([])
        self.base = base

    def search(self, q: str, page: int) -> Request:
        return Request(f"{self.base}/api/search", self.parse_api, method="POST",
                       json={"q": q, "page": page}, headers={"X-Requested-With": "fetch"},
                       cb_kwargs={"q": q, "page": page})

    async def start_requests(self) -> AsyncIterator[Request]:
        yield self.search("lamp", 1)

    async def parse_api(self, response: Response, q: str, page: int) -> AsyncIterator[Any]:
        data = response.json()
        for name in data["items"]:
            yield {"name": name}
        if data["more"]:
            yield self.search(q, page + 1)
        yield self.search(q, page)  # the same body again: a duplicate
        if q == "lamp" and page == 1:
            yield self.search("desk", 1)  # another body: another request


def _bodies(seen: Seen, path: str = "/api/search") -> list[dict[str, Any]]:
    return [json.loads(body) for _, p, _, body in seen if p == path]


async def test_a_json_api_is_paged_by_post_bodies_each_fetched_once(tmp_path: Path) -> None:
    seen: Seen = []
    async with serve(_api(seen)) as base:
        out = await crawl(SearchAPI(base), tmp_path / "api.db", CONFIG)
    assert out.result.status is CrawlStatus.FINISHED
    bodies = _bodies(seen)
    expected = [{"q": q, "page": p} for q in ("lamp", "desk") for p in (1, 2, 3)]
    assert sorted(bodies, key=str) == sorted(expected, key=str), "each page exactly once"
    assert sorted(i["name"] for i in out.items) == sorted(
        f"{b['q']}-{b['page']}-{n}" for b in expected for n in range(2))
    for method, _, headers, _ in seen:
        assert method == "POST"
        assert headers["X-Requested-With"] == "fetch"
        assert headers["Content-Type"] == "application/json"
    assert out.result.counts.counters["skipped_duplicate"] >= 6  # every page asked again
    with sqlite3.connect(tmp_path / "api.db") as conn:
        rows = conn.execute("SELECT method, body FROM requests").fetchall()
    conn.close()
    assert len(rows) == 6 and {m for m, _ in rows} == {"POST"}


async def test_a_resumed_crawl_sends_exactly_the_same_request(tmp_path: Path) -> None:
    seen: Seen = []
    path = tmp_path / "resume.db"
    async with serve(_api(seen, last_page=2)) as base:
        first = await crawl(SearchAPI(base), path, CrawlConfig(
            delay=0.0, workers=1, per_host=1, obey_robots=False, max_pages=1))
        assert first.result.status is CrawlStatus.PAGE_LIMIT
        assert _bodies(seen) == [{"q": "lamp", "page": 1}]
        second = await crawl(SearchAPI(base), path, CONFIG)
    assert second.result.status is CrawlStatus.FINISHED
    resumed = [(m, h, b) for m, p, h, b in seen[1:] if json.loads(b) == {"q": "lamp",
                                                                         "page": 2}]
    assert len(resumed) == 1
    method, headers, body = resumed[0]
    assert (method, body) == ("POST", b'{"q":"lamp","page":2}')
    assert headers["X-Requested-With"] == "fetch"
    assert headers["Content-Type"] == "application/json"
    assert sorted(map(str, _bodies(seen))) == sorted(map(str, [
        {"q": q, "page": p} for q in ("lamp", "desk") for p in (1, 2)]))


class Sends(Spider):
    """Each start request is given as keywords in `asks`; parse stores what /echo saw."""

    name = "sends"

    def __init__(self, base: str, asks: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__([])
        self.base = base
        self.asks = asks

    async def start_requests(self) -> AsyncIterator[Request]:
        for path, options in self.asks:
            yield Request(self.base + path, **options)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url, "status": response.status, **response.json()}


async def test_form_data_cookies_dont_filter_and_redirects_of_a_post(tmp_path: Path) -> None:
    seen: Seen = []
    async with serve(_api(seen)) as base:
        out = await crawl(Sends(base, [
            ("/echo", {"data": {"a": "1", "b": "x y"}}),
            ("/echo", {"data": [("a", "1"), ("b", "x y")]}),  # the same body: a duplicate
            ("/echo", {"method": "PUT", "body": "raw"}),
            ("/echo?c", {"cookies": {"session": "s1"}}),
            ("/echo?d", {"dont_filter": True}),
            ("/echo?d", {"dont_filter": True}),
            ("/r302", {"json": {"k": 1}}),
            ("/r307", {"json": {"k": 2}}),
        ]), tmp_path / "s.db", CONFIG)
    assert out.result.status is CrawlStatus.FINISHED
    got = sorted(((i["method"], i["body"], i["cookie"]) for i in out.items), key=str)
    assert got == sorted([
        ("POST", "a=1&b=x+y", None), ("PUT", "raw", None), ("GET", "", "session=s1"),
        ("GET", "", None), ("GET", "", None),
        ("GET", "", None),  # 302 of a POST: a GET without a body
        ("POST", '{"k":2}', None),  # 307: the same method and body
    ], key=str)
    posts = [h for m, p, h, _ in seen if p == "/echo" and m == "POST"]
    assert posts[0]["Content-Type"] == "application/x-www-form-urlencoded"
    after_302 = [h for m, p, h, _ in seen if p == "/echo" and m == "GET" and "Cookie" not in h]
    assert all("Content-Type" not in h for h in after_302)


class Statuses(Spider):
    name = "statuses"

    def __init__(self, base: str) -> None:
        super().__init__([])
        self.base = base
        self.failures: list[RequestFailure] = []

    async def start_requests(self) -> AsyncIterator[Request]:
        yield Request(self.base + "/missing", self.parse_missing, handle_statuses=[404])
        yield Request(self.base + "/missing?not-asked", self.parse_missing)
        yield Request(self.dead + "/gone", errback=self.on_error)
        yield Request(self.dead + "/sync", errback=self.on_error_sync)

    async def parse_missing(self, response: Response) -> AsyncIterator[Any]:
        yield {"status": response.status, "text": response.text}

    async def on_error(self, failure: RequestFailure) -> AsyncIterator[Any]:
        self.failures.append(failure)
        yield {"failed": failure.url, "kind": failure.kind, "message": failure.message}
        yield Request(self.base + "/echo?after-error")

    def on_error_sync(self, failure: RequestFailure) -> Iterator[Any]:
        self.failures.append(failure)
        yield {"failed": failure.url, "kind": str(failure.kind)}

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"followed": response.url}


async def test_a_404_reaches_the_callback_that_asks_and_an_errback_runs_once(
        tmp_path: Path) -> None:
    async with serve(_api([])) as dead:
        pass  # a port that was just free: connections are refused
    async with serve(_api([])) as base:
        spider = Statuses(base)
        spider.dead = dead  # type: ignore[attr-defined]
        config = CrawlConfig(delay=0.0, obey_robots=False, max_retries=2, retry_backoff=0.01)
        out = await crawl(spider, tmp_path / "st.db", config)
    assert out.result.status is CrawlStatus.FINISHED
    assert {"status": 404, "text": "no such thing"} in out.items
    assert sum(1 for i in out.items if "status" in i) == 1, "a 404 not asked for is not parsed"
    assert sorted(f.url for f in spider.failures) == [dead + "/gone", dead + "/sync"]
    assert all(f.kind == "connect" and f.status is None for f in spider.failures)
    failed = sorted((i["failed"], i["kind"]) for i in out.items if "failed" in i)
    assert failed == [(dead + "/gone", "connect"), (dead + "/sync", "connect")]
    assert {"followed": base + "/echo?after-error"} in out.items
    with sqlite3.connect(tmp_path / "st.db") as conn:
        rows = dict(conn.execute("SELECT url, attempts FROM requests WHERE state = 3"))
    conn.close()
    assert rows == {dead + "/gone": 3, dead + "/sync": 3}, "the errback after the retries"


class BadInput(Spider):
    name = "bad-input"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        case = response.url.rsplit("?", 1)[1]
        if case == "header":
            yield Request("http://x.test/", headers={"X-A": "a\r\nInjected: 1"})  # LINE header
        elif case == "json":
            yield Request("http://x.test/", json={"when": object()})  # LINE json
        elif case == "method":
            yield Request("http://x.test/", method="BREW")  # LINE method
        else:
            yield response.follow("/x", method="POST",  # LINE body
                                  body=b"x" * (MAX_REQUEST_BYTES + 1))


def _line_of(marker: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.endswith(f"# LINE {marker}"))


async def test_bad_input_is_a_clear_error_naming_the_spiders_line(tmp_path: Path) -> None:
    async with serve(_api([])) as base:
        cases = ("header", "json", "method", "body")
        spider = BadInput([f"{base}/echo?{case}" for case in cases])
        out = await crawl(spider, tmp_path / "bad.db", FAST)
    words = {"header": "control character '\\r'", "json": "cannot be sent as JSON",
             "method": "unknown HTTP method 'BREW'", "body": "a request may take at most"}
    for case in cases:
        state, _, error, _ = out.rows[f"{base}/echo?{case}"]
        assert state == 3 and error is not None, (case, out.rows)
        assert error.startswith("callback: SpiderError") and words[case] in error, error
        assert f"{__file__}:{_line_of(case)} in parse)" in error, error
    assert out.items == []


def test_bad_input_is_refused_where_the_request_is_made() -> None:
    with pytest.raises(SpiderError, match="cannot have a body"):
        Request("http://x.test/", method="GET", body="x")
    with pytest.raises(SpiderError, match="give one"):
        Request("http://x.test/", json={}, data={})
    with pytest.raises(SpiderError, match="not a valid header name"):
        Request("http://x.test/", headers={"Bad Name": "x"})
    with pytest.raises(SpiderError, match="proxy must be"):
        Request("http://x.test/", proxy="socks9://u:secret@p")
    with pytest.raises(SpiderError, match="not an HTTP status"):
        Request("http://x.test/", handle_statuses=[42])
    with pytest.raises(SpiderError, match="must be a generator"):
        Request("http://x.test/", errback=Statuses("http://x.test").__init__)


def test_a_plain_get_keeps_its_fingerprint_and_stays_plain() -> None:
    assert Request("http://h/a").extra is None
    assert Request("http://h/a", method="get", headers={}).extra is None
    plain = NewRequest("http://h/a")
    assert request_fingerprint(plain) == fingerprint("http://h/a") == -6792865360714233030
    post = NewRequest("http://h/a", method="POST", body=b"x")
    other = NewRequest("http://h/a", method="POST", body=b"y")
    assert len({request_fingerprint(r) for r in (plain, post, other)}) == 3
    assert request_fingerprint(post) == request_fingerprint(post._replace(spec="{}"))
    unique = NewRequest("http://h/a", unique=True)
    assert request_fingerprint(unique) != request_fingerprint(unique)


def _proxy_app(seen: list[tuple[str, str | None]]) -> web.Application:
    """A proxy that answers for every target itself, logging the target and the
    Proxy-Authorization it was given."""
    async def answer(request: web.Request) -> web.Response:
        seen.append((str(request.url), request.headers.get("Proxy-Authorization")))
        return web.json_response({"method": request.method, "body": "", "cookie": None})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def test_a_request_goes_through_its_proxy_whose_password_is_never_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, str | None]] = []
    for name in ("crawler", "storage"):  # the crawl's own logs, at their most detailed
        caplog.set_level("DEBUG", logger=name)
    async with serve(_proxy_app(seen)) as proxy, serve(_api([])) as base:
        with_password = proxy.replace("http://", "http://user:s3cret@")
        out = await crawl(Sends(base, [("/echo?p", {"proxy": with_password})]),
                          tmp_path / "p.db", CONFIG)
    assert out.result.status is CrawlStatus.FINISHED
    assert [url for url, _ in seen] == [base + "/echo?p"], "the request went by the proxy"
    assert seen[0][1] == "Basic dXNlcjpzM2NyZXQ="  # user:s3cret
    assert "s3cret" not in "".join(r.getMessage() for r in caplog.records
                                   if r.name.startswith(("crawler", "storage")))
    assert "s3cret" not in repr(Request(base, proxy=with_password))


async def test_a_schema_4_file_is_upgraded_its_rows_plain_gets(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = await SQLiteStore.open(path)
    try:
        await store.open_crawl("s", "{}", fresh=True)
        await store.add([NewRequest("http://h/a"), NewRequest("http://h/b")])
        await store.finish_run("finished")
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        for column in ("method", "spec", "body"):
            conn.execute(f"ALTER TABLE requests DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 4")
    conn.close()
    store = await SQLiteStore.open(path)
    try:
        await store.open_crawl("s", "{}", fresh=False)
        # The same URL as a GET is a duplicate of the old row; as a POST, a request of its own.
        assert await store.add([NewRequest("http://h/a"),
                                NewRequest("http://h/a", method="POST", body=b"{}")]) == 1
        leased = await store.claim(10, time.time())
    finally:
        await store.close()
    assert sorted(((r.url, r.method, r.body) for r in leased), key=str) == sorted([
        ("http://h/a", None, None), ("http://h/a", "POST", b"{}"), ("http://h/b", None, None)],
        key=str)


def test_a_spiders_handle_statuses_are_checked_when_the_crawl_is_made() -> None:
    class Wrong(Spider):
        name = "wrong"
        handle_statuses = ("404",)  # type: ignore[assignment]

    with pytest.raises(SpiderError, match="not an HTTP status"):
        Crawler(Wrong(), cast(Store, None))


def test_a_301_or_302_turns_only_a_post_into_a_get_and_a_303_any_method() -> None:
    # The Fetch standard: 301 and 302 change a POST into a GET; 303 changes every method
    # but HEAD; a PUT or DELETE moved by a 301 or 302 stays what it was.
    src, dst = URL("http://a.test/x"), URL("http://a.test/y")
    post = Request("http://a.test/x", method="POST", body=b"b").extra
    put = Request("http://a.test/x", method="PUT", body=b"b").extra
    delete = Request("http://a.test/x", method="DELETE").extra
    assert post is not None and put is not None and delete is not None
    for status in (301, 302, 303):
        assert specs.redirected(post, status, src, dst) is None  # a plain GET
        assert specs.redirected(put, 303, src, dst) is None
    for status in (301, 302):
        for extra, method in ((put, "PUT"), (delete, "DELETE")):
            moved = specs.redirected(extra, status, src, dst)
            assert moved is not None and moved.method == method and moved.body == extra.body
