"""A request's own `cookies=` join the crawl's jar: later requests to its host send them, and
the state file keeps them. With `cookies = False` they go with that one request only."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from yarl import URL

from crawler import CrawlConfig, Request, Response, Spider
from crawler.config import layered
from tests.crawling import crawl
from tests.sites.serve import serve


def echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("Cookie", ""))

    app = web.Application()
    app.router.add_get("/{n}", echo)
    return app


class Given(Spider):
    name = "given"

    async def start_requests(self) -> AsyncIterator[Request]:
        yield Request(self.start_urls[0] + "one", cookies={"k": "v"})

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"page": URL(response.url).path, "cookie": response.text}
        if response.url.endswith("/one"):
            yield response.follow("/two")  # without cookies=


class GivenNoJar(Given):
    cookies = False


def _by_page(items: list[dict[str, Any]]) -> dict[str, str]:
    return {item["page"]: item["cookie"] for item in items}


def _stored(state: Path) -> list[tuple[str, str, str, str, int]]:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT name, value, domain, path, host_only FROM cookies").fetchall()


async def test_request_cookies_join_the_jar_and_the_state_file(tmp_path: Path) -> None:
    async with serve(echo_app(), "127.0.0.2") as base:
        start = [f"http://k.test:{URL(base).port}/"]
        config = CrawlConfig(delay=0, resolve={"k.test": "127.0.0.2"})
        on = await crawl(Given(start), tmp_path / "on.db", config)
        off_spider = GivenNoJar(start)
        off = await crawl(off_spider, tmp_path / "off.db", layered(off_spider, base=config))
    assert _by_page(on.items) == {"/one": "k=v", "/two": "k=v"}
    assert _stored(tmp_path / "on.db") == [("k", "v", "k.test", "/", 1)]
    assert _by_page(off.items) == {"/one": "k=v", "/two": ""}
    assert _stored(tmp_path / "off.db") == []
