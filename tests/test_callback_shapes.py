"""Callback shapes: `async def` and `def` generators, functions returning a list or None, on a
real server; any other shape refused before the crawl fetches anything, naming the method."""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler import CrawlConfig, Request, Response, Spider
from crawler.errors import SpiderError
from crawler.model.callshape import Shape, shape_of
from tests.crawling import crawl
from tests.helpers import crawl as crawl_cli
from tests.sites.serve import serve, serve_in_thread

PAGES = 3


def site(hits: list[str] | None = None) -> web.Application:
    """`/` links to /p/0 .. /p/2, which link nowhere."""
    async def handle(request: web.Request) -> web.Response:
        if hits is not None:
            hits.append(request.path)
        links = "".join(f'<a href="/p/{n}">{n}</a>' for n in range(PAGES))
        body = f"<html><body>{links if request.path == '/' else ''}</body></html>"
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


class AsyncGenerator(Spider):
    name = "shapes"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url}
        for request in response.follow_all(callback=self.page):
            yield request

    async def page(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url}


class SyncGenerator(Spider):
    name = "shapes"

    def parse(self, response: Response) -> Iterator[Any]:  # type: ignore[override]
        yield {"url": response.url}
        yield from response.follow_all(callback=self.page)

    def page(self, response: Response) -> Iterator[Any]:
        yield {"url": response.url}


class ReturnsList(Spider):
    name = "shapes"

    def parse(self, response: Response) -> list[Any]:  # type: ignore[override]
        return [{"url": response.url}, *response.follow_all(callback=self.page)]

    def page(self, response: Response) -> list[Any] | None:
        if response.url.endswith("/0"):
            return None  # nothing from this page
        return [{"url": response.url}]


class AsyncReturnsList(Spider):
    name = "shapes"

    async def parse(self, response: Response) -> list[Any]:  # type: ignore[override]
        return [{"url": response.url}, *response.follow_all(callback=self.page)]

    async def page(self, response: Response) -> None:
        return None


@pytest.mark.parametrize(("cls", "items"), [
    (AsyncGenerator, PAGES + 1), (SyncGenerator, PAGES + 1), (ReturnsList, PAGES),
    (AsyncReturnsList, 1),
], ids=["async-generator", "sync-generator", "returns-list", "async-returns-list"])
async def test_each_shape_stores_items_and_follows_requests(
        tmp_path: Path, cls: type[Spider], items: int) -> None:
    async with serve(site()) as base:
        out = await crawl(cls([base + "/"]), tmp_path / "s.db")
    assert len(out.items) == items
    pages = [f"{base}/p/{n}" for n in range(PAGES)]
    assert sorted(out.rows) == [f"{base}/", *pages]  # every request followed
    assert all(row[0:3] == (2, 200, None) for row in out.rows.values()), out.rows
    assert out.result.stats.failed == 0


class ReturnsDictAtRunTime(Spider):
    name = "shapes"

    def parse(self, response: Response) -> Any:  # type: ignore[override]
        item = {"url": response.url}
        return item  # the source cannot tell it is a dict: refused when it runs


async def test_a_function_returning_a_non_list_fails_its_request_saying_why(
        tmp_path: Path) -> None:
    async with serve(site()) as base:
        out = await crawl(ReturnsDictAtRunTime([base + "/"]), tmp_path / "s.db")
    assert out.items == []
    (error,) = [row[2] for row in out.rows.values()]
    assert error is not None
    assert error.startswith(f"callback: callback 'parse' (at {__file__}:"), error
    assert "returned dict {'url': " in error
    assert "generator" in error


class SlowSyncGenerator(Spider):
    name = "slow"

    def parse(self, response: Response) -> Iterator[Any]:  # type: ignore[override]
        if "/p/" in response.url:
            time.sleep(0.3)  # one step that holds the loop
        yield {"url": response.url}
        yield from response.follow_all()


async def test_a_blocking_sync_generator_step_is_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = CrawlConfig(delay=0, workers=8, per_host=8, obey_robots=False, timeout=10)
    with caplog.at_level(logging.WARNING, logger="crawler"), serve_in_thread(site()) as base:
        out = await crawl(SlowSyncGenerator([base + "/"]), tmp_path / "s.db", config)
    assert len(out.items) == PAGES + 1
    warnings = [r.getMessage() for r in caplog.records if "blocked the event loop" in r.message]
    assert len(warnings) == 1, warnings
    assert "callback parse blocked the event loop for 0.3s" in warnings[0]


class Shapes(Spider):
    """Methods of each shape, for the checks without a crawl."""

    async def agen(self, response: Response) -> AsyncIterator[Any]:
        yield {}

    def gen(self, response: Response) -> Iterator[Any]:
        yield {}

    def listing(self, response: Response) -> list[Any]:
        return [{}, response.follow("/x")]

    async def coroutine(self, response: Response) -> list[Any] | None:
        def inner() -> dict[str, Any]:
            return {}  # not the callback's own return
        if response.status == 1:
            return None
        return [inner()]

    def opaque(self, response: Response) -> Any:
        return response.json()  # cannot be told from the source

    def concatenated(self, response: Response) -> list[Any]:
        return [{}] + response.follow_all()  # noqa: RUF005 (a BinOp return, under test)

    def returns_tuple(self, response: Response) -> Any:
        return {}, {}

    def returns_str(self, response: Response) -> Any:
        return f"{response.url}"

    async def returns_request(self, response: Response) -> Any:
        return response.follow("/next", self.agen)

    def returns_bare_request(self, response: Response) -> Any:
        return Request("http://h/")


@pytest.mark.parametrize(("name", "shape"), [
    ("agen", Shape.ASYNC_GENERATOR), ("gen", Shape.GENERATOR), ("listing", Shape.FUNCTION),
    ("coroutine", Shape.COROUTINE), ("opaque", Shape.FUNCTION),
    ("concatenated", Shape.FUNCTION),
])
def test_accepted_shapes(name: str, shape: Shape) -> None:
    assert shape_of(getattr(Shapes(), name)) is shape


@pytest.mark.parametrize(("name", "what"), [
    ("returns_tuple", "returns a tuple"), ("returns_str", "returns a str"),
    ("returns_request", "returns a single follow(...)"),
    ("returns_bare_request", "returns a single Request(...)"),
])
def test_refused_shapes_name_the_method_and_its_line(name: str, what: str) -> None:
    method = getattr(Shapes(), name)
    with pytest.raises(SpiderError) as info:
        shape_of(method)
    text = str(info.value)
    assert text.startswith(f"callback {name!r} (at {__file__}:"), text
    assert what in text
    line = method.__code__.co_firstlineno + 1  # the return statement
    assert f"(line {line})" in text


def test_not_a_method_refused() -> None:
    with pytest.raises(SpiderError, match="'parse' is 5, not a method"):
        shape_of(5, "parse")  # type: ignore[arg-type]
    with pytest.raises(SpiderError, match=r"'parse' is \['x'\], not a method"):
        shape_of(["x"], "parse")  # type: ignore[arg-type]


BAD_SPIDER = """
from crawler import Spider

class Bad(Spider):
    name = "bad"

    def parse(self, response):
        return {{"url": response.url}}
"""

BAD_CALLBACK = """
from crawler import Request, Spider

class Bad(Spider):
    name = "bad"

    async def start_requests(self):
        yield Request("{url}", self.details)

    async def parse(self, response):
        yield {{}}

    def details(self, response):
        return "a", "b"
"""

NOT_A_METHOD = """
from crawler import Spider

class Bad(Spider):
    name = "bad"
    parse = "oops"
"""


@pytest.mark.parametrize(("source", "named"), [
    (BAD_SPIDER, "callback 'parse' (at "), (BAD_CALLBACK, "callback 'details' (at "),
    (NOT_A_METHOD, "callback 'parse' is 'oops', not a method"),
], ids=["parse-returns-dict", "callback-returns-tuple", "parse-not-a-method"])
def test_crawl_run_refuses_a_bad_shape_before_fetching(
        tmp_path: Path, source: str, named: str) -> None:
    hits: list[str] = []
    with serve_in_thread(site(hits)) as base:
        spider = tmp_path / "bad.py"
        spider.write_text(textwrap.dedent(source.format(url=base + "/")))
        state = tmp_path / "bad.db"
        proc = crawl_cli("run", str(spider), base + "/", "--state", str(state), "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr, proc.stderr
    assert hits == []  # refused before any fetch (robots.txt included)
