"""A cookie's Domain may not be a public suffix (co.uk, github.io): such a cookie would reach
every site registered under it. Real servers on 127.0.0.2, reached by names (`resolve`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from yarl import URL

from crawler import CrawlConfig, Request, Response, Spider
from tests.crawling import crawl
from tests.sites.serve import serve

HOSTS = ["shop.co.uk", "other.co.uk", "sub.shop.co.uk", "github.io", "me.github.io"]


def domains_app() -> web.Application:
    async def shop(request: web.Request) -> web.Response:
        resp = web.Response(content_type="text/html", text="<p>shop</p>")
        resp.set_cookie("wide", "1", domain="co.uk", path="/")  # every .co.uk site: refused
        resp.set_cookie("own", "1", domain="shop.co.uk", path="/")  # its own site: kept
        return resp

    async def pages(request: web.Request) -> web.Response:
        # The host is the suffix itself: its Domain=github.io makes a host-only cookie.
        resp = web.Response(content_type="text/html", text="<p>pages</p>")
        resp.set_cookie("gh", "1", domain="github.io", path="/")
        return resp

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("Cookie", ""))

    app = web.Application()
    app.router.add_get("/shop", shop)
    app.router.add_get("/pages", pages)
    app.router.add_get("/echo", echo)
    return app


class Domains(Spider):
    name = "domains"
    allowed_hosts = HOSTS
    port = 0

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield Request(f"http://github.io:{self.port}/pages", self.then_echo)

    async def then_echo(self, response: Response) -> AsyncIterator[Any]:
        for host in HOSTS:
            yield Request(f"http://{host}:{self.port}/echo", self.echo)

    async def echo(self, response: Response) -> AsyncIterator[Any]:
        yield {"host": URL(response.url).host, "cookie": response.text}


async def test_a_cookie_for_a_public_suffix_is_refused(tmp_path: Path) -> None:
    async with serve(domains_app(), "127.0.0.2") as base:
        port = URL(base).port
        assert port is not None
        spider = Domains([f"http://shop.co.uk:{port}/shop"])
        spider.port = port
        config = CrawlConfig(delay=0, resolve=dict.fromkeys(HOSTS, "127.0.0.2"))
        outcome = await crawl(spider, tmp_path / "d.db", config)
    sent = {item["host"]: item["cookie"] for item in outcome.items}
    assert sent == {
        "shop.co.uk": "own=1",
        "sub.shop.co.uk": "own=1",
        "other.co.uk": "",  # Domain=co.uk was refused
        "github.io": "gh=1",
        "me.github.io": "",  # Domain=github.io from github.io itself is host-only
    }
