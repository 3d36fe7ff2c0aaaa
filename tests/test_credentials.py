"""Credentials go where they were given only: basic auth to its host on the scheme and port
of the crawl's start URLs, a request's own Authorization and cookies never across origins on
a redirect, a per-request proxy checked whole (its password never in a message), and the
crawler's own headers (Host, Content-Length, Transfer-Encoding) refused. Real servers on
127.0.0.x, names mapped with `resolve`."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crawler import CrawlConfig, Request, RequestFailure, Response, Spider
from crawler.errors import SpiderError
from crawler.http.fetcher import _redacted
from tests.crawling import crawl
from tests.sites.serve import serve

SECRET = "s3cret"
AUTHORIZED = aiohttp.encode_basic_auth("user", SECRET)
NAMES = {"a.test": "127.0.0.2", "b.test": "127.0.0.3"}
CONFIG = CrawlConfig(delay=0.0, per_host=4, workers=4, retry_backoff=0.01, max_retries=0,
                     resolve=NAMES)
Seen = list[tuple[str, str, dict[str, str]]]  # host:port, path, headers


def _app(seen: Seen) -> web.Application:
    """/redir?to=URL[&s=307] redirects there; any other page links to its ?links= URL."""
    async def page(request: web.Request) -> web.Response:
        await request.read()
        seen.append((request.host, request.path, dict(request.headers)))
        if request.path == "/redir":
            raise web.HTTPTemporaryRedirect(request.query["to"]) if request.query.get(
                "s") == "307" else web.HTTPFound(request.query["to"])
        link = request.query.get("links")
        return web.Response(content_type="text/html", text=f'<a href="{link}">x</a>' * bool(link))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    return app


class Asks(Spider):
    name = "asks"
    allowed_hosts = ("a.test", "b.test")

    def __init__(self, asks: list[tuple[str, dict[str, Any]]], ports: tuple[int, ...]) -> None:
        super().__init__([])
        self.asks = asks
        self.allowed_ports = ports

    async def start_requests(self) -> AsyncIterator[Request]:
        for url, options in self.asks:
            yield Request(url, **options)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url}
        for request in response.follow_all():
            yield request


async def test_basic_auth_never_goes_to_another_port_of_its_host(tmp_path: Path) -> None:
    seen: Seen = []
    async with serve(_app(seen), "127.0.0.2") as one, serve(_app(seen), "127.0.0.2") as two:
        port, other = one.rsplit(":", 1)[1], two.rsplit(":", 1)[1]
        elsewhere = f"http://a.test:{other}"
        spider = Asks([(f"http://a.test:{port}/page?links={elsewhere}/viaLink", {}),
                       (f"http://a.test:{port}/redir?to={elsewhere}/viaRedirect", {})],
                      (int(other),))
        await crawl(spider, tmp_path / "a.db",
                    dataclasses.replace(CONFIG, auth={"a.test": ("user", SECRET)}))
    paths = {(host.rsplit(":", 1)[1], path): headers.get("Authorization")
             for host, path, headers in seen}
    assert paths == {(port, "/robots.txt"): AUTHORIZED, (port, "/page"): AUTHORIZED,
                     (port, "/redir"): AUTHORIZED, (other, "/robots.txt"): None,
                     (other, "/viaLink"): None, (other, "/viaRedirect"): None}


async def test_a_redirect_to_another_origin_leaves_the_requests_credentials(
        tmp_path: Path) -> None:
    seen: Seen = []
    async with serve(_app(seen), "127.0.0.2") as a_base, serve(_app(seen), "127.0.0.3", int(
            a_base.rsplit(":", 1)[1])):
        port = a_base.rsplit(":", 1)[1]
        a, b = f"http://a.test:{port}", f"http://b.test:{port}"
        secret = {"headers": {"Authorization": "Bearer TOKEN", "X-Test": "1"},
                  "cookies": {"sess": "PERREQ"}}
        spider = Asks([(f"{a}/redir?to={b}/crossHost", secret),
                       (f"{a}/redir?s=307&to={b}/crossHost307",
                        {"method": "POST", "json": {"a": 1}, **secret}),
                       (f"{a}/redir?s=307&to={a}/sameHost", {"method": "PUT", **secret})], ())
        await crawl(spider, tmp_path / "r.db", CONFIG)
    by_path = {path: headers for _, path, headers in seen if path != "/robots.txt"}
    assert set(by_path) == {"/redir", "/crossHost", "/crossHost307", "/sameHost"}
    for path in ("/crossHost", "/crossHost307"):
        assert "Authorization" not in by_path[path] and "Cookie" not in by_path[path], path
        assert by_path[path]["X-Test"] == "1", "other headers go on"
    assert by_path["/sameHost"]["Authorization"] == "Bearer TOKEN", "same origin: kept"
    assert by_path["/sameHost"]["Cookie"] == "sess=PERREQ"


BAD_PROXIES = [f"http://user:{SECRET}@", f"http://user:{SECRET}@127.0.0.5:notaport",
               f"http://user:{SECRET}@[::1"]


@pytest.mark.parametrize("proxy", BAD_PROXIES)
def test_a_malformed_proxy_is_refused_without_its_password(proxy: str) -> None:
    with pytest.raises(SpiderError) as caught:
        Request("http://a.test/", proxy=proxy)
    assert SECRET not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize("name", ["Host", "content-length", "Transfer-Encoding"])
def test_the_crawlers_own_headers_are_refused(name: str) -> None:
    with pytest.raises(SpiderError, match=name):
        Request("http://a.test/", headers={name: "1"})


class Proxied(Spider):
    """Each start page asks for one page through one of `proxies`; failures reach `failed`."""

    name = "proxied"

    def __init__(self, base: str, proxies: list[str]) -> None:
        super().__init__([])
        self.base, self.proxies = base, proxies

    async def start_requests(self) -> AsyncIterator[Request]:
        for n in range(len(self.proxies)):
            yield Request(f"{self.base}/start{n}", cb_kwargs={"n": n})

    async def parse(self, response: Response, n: int = -1) -> AsyncIterator[Any]:
        if n >= 0:
            yield Request(f"{self.base}/via{n}", proxy=self.proxies[n], errback=self.failed)

    async def failed(self, failure: RequestFailure) -> AsyncIterator[Any]:
        yield {"failed": failure.url, "message": failure.message}


async def test_a_proxy_failing_never_writes_its_password(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("crawler", "storage"):
        caplog.set_level(logging.DEBUG, logger=name)
    async with serve(_app([]), "127.0.0.2") as base:
        port = base.rsplit(":", 1)[1]
        proxies = [*BAD_PROXIES, f"http://user:{SECRET}@127.0.0.5:9",
                   f"https://user:{SECRET}@127.0.0.2:{port}"]
        out = await crawl(Proxied(base, proxies), tmp_path / "p.db", CONFIG)
    assert out.rows, "the crawl ran"
    assert SECRET not in "".join(r.getMessage() for r in caplog.records)
    # Anywhere but the request's own proxy, which a resumed crawl sends again.
    with sqlite3.connect(tmp_path / "p.db") as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        values = [v for t in tables for row in db.execute(f"SELECT * FROM {t}") for v in row]
        specs = {spec for (spec,) in db.execute("SELECT spec FROM requests")}
    assert [v for v in values if SECRET in str(v)], "the requests' own proxies are kept"
    assert [v for v in values if SECRET in str(v) and v not in specs] == []


def test_a_fetch_errors_text_loses_any_urls_credentials() -> None:
    assert _redacted(f"invalid URL: http://user:{SECRET}@[::1 and https://u:{SECRET}@h:1/p") \
        == "invalid URL: http://***@[::1 and https://***@h:1/p"
