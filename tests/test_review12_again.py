"""Second review of issue 12: what a Scrapy user's login flow needs of redirects, and whose
Authorization header a request sends. Real servers on 127.0.0.x."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from crawler import CrawlConfig, Request, RequestFailure, Response, Spider
from crawler.model import specs
from crawler.policy.admission import Admission
from crawler.urls.scope import Scope
from tests.crawling import crawl
from tests.sites.serve import serve

CONFIG = CrawlConfig(delay=0.0, per_host=4, workers=4, retry_backoff=0.01, max_retries=0,
                     obey_robots=False)


def _login_site(seen: list[tuple[str, str]]) -> web.Application:
    """/ is the home page; POST /login answers with a redirect to it, as sites do."""
    async def page(request: web.Request) -> web.Response:
        seen.append((request.method, request.path))
        if request.method == "POST":
            raise web.HTTPFound("/")
        return web.Response(text="<title>home</title>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    return app


class LogsIn(Spider):
    """Starts on the home page, logs in, and expects to be sent back to it."""

    name = "logs-in"

    def __init__(self, base: str, *, dont_filter: bool) -> None:
        super().__init__([base + "/"])
        self.base = base
        self.dont_filter = dont_filter

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield Request(self.base + "/login", self.after_login, data={"user": "me"},
                      dont_filter=self.dont_filter)

    async def after_login(self, response: Response) -> AsyncIterator[Any]:
        yield {"after_login": response.url}


async def test_a_dont_filter_login_redirected_to_a_seen_page_reaches_its_callback(
        tmp_path: Path) -> None:
    # Scrapy's way to write it: the FormRequest's dont_filter=True is kept by its redirect.
    seen: list[tuple[str, str]] = []
    async with serve(_login_site(seen)) as base:
        out = await crawl(LogsIn(base, dont_filter=True), tmp_path / "a.db", CONFIG)
    assert out.items == [{"after_login": base + "/"}]
    assert seen == [("GET", "/"), ("POST", "/login"), ("GET", "/")]
    # Without it the redirect is a duplicate of the page already fetched, as in Scrapy.
    seen.clear()
    async with serve(_login_site(seen)) as base:
        out = await crawl(LogsIn(base, dont_filter=False), tmp_path / "b.db", CONFIG)
    assert out.items == []
    assert seen == [("GET", "/"), ("POST", "/login")]


def test_every_kind_of_redirect_keeps_dont_filter() -> None:
    src, same, other = (URL("http://a.test/x"), URL("http://a.test/y"), URL("http://b.test/y"))
    for options in ({"method": "POST", "body": b"b"}, {"method": "PUT", "body": b"b"}, {}):
        extra = Request("http://a.test/x", dont_filter=True, **options).extra  # type: ignore
        assert extra is not None and extra.unique
        for status in (301, 302, 303, 307, 308):
            for target in (same, other):
                moved = specs.redirected(extra, status, src, target)
                assert moved is not None and moved.unique, (options, status, target)
    plain = Request("http://a.test/x", method="POST", body=b"b").extra
    assert plain is not None
    moved = specs.redirected(plain, 307, src, same)
    assert moved is not None and not moved.unique


def _headers_site(seen: list[list[str]]) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        seen.append(request.headers.getall("Authorization", []))
        return web.Response(text="<title>t</title>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    return app


class OwnAuthorization(Spider):
    name = "own-authorization"

    async def start_requests(self) -> AsyncIterator[Request]:
        base = self.start_urls[0]
        yield Request(base + "/api", headers={"authorization": "Bearer T0KEN"})
        yield Request(base + "/page")

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url}


async def test_a_requests_own_authorization_is_sent_instead_of_the_crawls_basic_auth(
        tmp_path: Path) -> None:
    # As Scrapy's HttpAuthMiddleware: a request that says its own Authorization keeps it.
    seen: list[list[str]] = []
    async with serve(_headers_site(seen)) as base:
        config = dataclasses.replace(CONFIG, auth={str(URL(base).host): ("u", "p")})
        out = await crawl(OwnAuthorization([base]), tmp_path / "a.db", config)
    assert len(out.items) == 2
    assert sorted(seen) == [["Basic dTpw"], ["Bearer T0KEN"]]


def test_dont_filter_requests_are_never_taken_for_each_other() -> None:
    # Each is like no other, even when a later one is made where a freed one lived (its
    # id() is then the same): the same request yielded again, page after page, is sent again.
    admission = Admission(CrawlConfig(), Scope(["a.test"]), None)
    for _ in range(50):
        skipped: Counter[str] = Counter()
        admitted = admission.admit([Request("http://a.test/x", dont_filter=True)], 1, None,
                                   skipped)
        assert len(admitted) == 1 and not skipped
        admission.remember(admitted)


def _loop_site(seen: list[str]) -> web.Application:
    async def loop(request: web.Request) -> web.Response:
        seen.append(request.method)
        raise web.HTTPTemporaryRedirect("/loop")

    app = web.Application()
    app.router.add_route("*", "/loop", loop)
    return app


class Loops(Spider):
    name = "loops"

    async def start_requests(self) -> AsyncIterator[Request]:
        yield Request(self.start_urls[0] + "/loop", method="POST", body="x", dont_filter=True,
                      errback=self.on_error)

    async def on_error(self, failure: RequestFailure) -> AsyncIterator[Any]:
        yield {"kind": failure.kind}


async def test_a_dont_filter_redirect_loop_ends_at_max_redirects(tmp_path: Path) -> None:
    seen: list[str] = []
    async with serve(_loop_site(seen)) as base:
        out = await crawl(Loops([base]), tmp_path / "a.db",
                          dataclasses.replace(CONFIG, max_redirects=10))
    assert seen == ["POST"] * 11
    assert out.items == [{"kind": "redirects"}]


class _RawProxy:
    """A proxy that writes down each request's head and answers 200 (an http target) or 407
    (a CONNECT), on 127.0.0.1."""

    def __init__(self) -> None:
        self.heads: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        self.heads.append(head)
        if head.startswith("CONNECT"):
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0"
                         b"\r\nConnection: close\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 8"
                         b"\r\nConnection: close\r\n\r\n<p>x</p>")
        await writer.drain()
        writer.close()


HEADERS = {"Authorization": "Bearer T4RGET", "Cookie": "sid=C00KIE", "X-Api-Key": "K3Y"}


class Proxied(Spider):
    name = "proxied"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url}


async def test_the_crawls_headers_never_go_to_the_proxy_in_a_connect(tmp_path: Path) -> None:
    # aiohttp copies a session's default headers into the CONNECT it sends a proxy: the
    # crawl's own headers (its target's Authorization, cookies, keys) would reach the proxy,
    # the Authorization as the proxy's Proxy-Authorization, in place of the proxy's own.
    proxy = _RawProxy()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = dataclasses.replace(CONFIG, proxy=f"http://pu:PX9@127.0.0.1:{port}",
                                 headers=HEADERS)
    async with server:
        await crawl(Proxied(["http://a.test/page", "https://a.test/page"]), tmp_path / "a.db",
                    config)
    own = aiohttp.encode_basic_auth("pu", "PX9")
    connect = next(h for h in proxy.heads if h.startswith("CONNECT"))
    get = next(h for h in proxy.heads if h.startswith("GET"))
    assert f"Proxy-Authorization: {own}\r\n" in connect
    for secret in ("T4RGET", "C00KIE", "K3Y"):
        assert secret not in connect
    assert f"Proxy-Authorization: {own}\r\n" in get  # the http target's request, to the proxy
    assert "Authorization: Bearer T4RGET\r\n" in get and "Cookie: sid=C00KIE\r\n" in get
