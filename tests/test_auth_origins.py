"""`auth` keys: a host (sent where the start URLs reach it, else to https on 443 only) or an
origin, http(s)://HOST[:PORT], sent to exactly that origin. Real servers on 127.0.0.2, names
mapped with `resolve`."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from crawler import CrawlConfig, Response, Spider
from crawler.errors import ConfigError
from crawler.http.session import auth_by_origin
from tests.crawling import crawl
from tests.sites.serve import serve
from tests.test_engine_decisions import BASE, DictTransport, page, run
from tests.test_engine_decisions import config as engine_config

API = aiohttp.encode_basic_auth("api", "k1")
OTHER = aiohttp.encode_basic_auth("other", "k2")
HOSTS = ("site.test", "api.test", "other.test")


def _app(seen: dict[tuple[str, str], str | None], links: list[str]) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        seen[(request.host, request.path)] = request.headers.get("Authorization")
        hrefs = "".join(f'<a href="{link}">x</a>' for link in links) * (request.path == "/")
        return web.Response(content_type="text/html", text=hrefs)

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app


class Follows(Spider):
    name = "follows"
    allowed_hosts = HOSTS

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for request in response.follow_all():
            yield request


async def test_an_origin_key_reaches_that_origin_only(tmp_path: Path) -> None:
    seen: dict[tuple[str, str], str | None] = {}
    links: list[str] = []
    app = _app(seen, links)
    async with serve(app, "127.0.0.2") as one, serve(app, "127.0.0.2") as two:
        p1, p2 = URL(one).port, URL(two).port
        assert p1 is not None and p2 is not None
        links += [f"http://api.test:{p1}/a", f"http://api.test:{p2}/b",
                  f"http://other.test:{p1}/c"]
        spider = Follows([f"http://site.test:{p1}/"])
        spider.allowed_ports = (p2,)
        config = CrawlConfig(delay=0, max_retries=0, obey_robots=False,
                             resolve=dict.fromkeys(HOSTS, "127.0.0.2"),
                             auth={f"http://api.test:{p1}": ("api", "k1"),
                                   "other.test": ("other", "k2")})
        await crawl(spider, tmp_path / "a.db", config)
    assert seen == {
        (f"site.test:{p1}", "/"): None,
        (f"api.test:{p1}", "/a"): API,  # the origin named
        (f"api.test:{p2}", "/b"): None,  # another port of its host
        # A host no start URL reaches gets its auth on https, port 443, only.
        (f"other.test:{p1}", "/c"): None,
    }


def test_key_forms_map_to_origins() -> None:
    config = CrawlConfig(auth={"site.test": ("s", "1"), "api.test": ("api", "k1"),
                               "https://x.test": ("x", "2"), "http://X.test:81/": ("y", "3")})
    origins = auth_by_origin(config, [URL("http://site.test:8080/")])
    assert origins == {
        ("http", "site.test", 8080): aiohttp.encode_basic_auth("s", "1"),  # where started
        ("https", "api.test", 443): API,  # reached by no start URL: https only
        ("https", "x.test", 443): aiohttp.encode_basic_auth("x", "2"),  # default port
        ("http", "x.test", 81): aiohttp.encode_basic_auth("y", "3"),
    }


@pytest.mark.parametrize("key", ["https://api.test/v1", "https://api.test?k=1",
                                 "https://u@api.test", "ftp://api.test", "api.test:8443",
                                 "https://api.test#top", "https://"])
def test_a_key_that_is_no_host_or_origin_is_refused_by_name(key: str) -> None:
    with pytest.raises(ConfigError, match="neither a host name nor an origin") as refused:
        dataclasses.replace(CrawlConfig(), auth={key: ("u", "p")})
    assert repr(key) in str(refused.value)


@dataclasses.dataclass
class TellsStarts(DictTransport):
    """Any transport (not only the aiohttp Fetcher) is told the crawl's start URLs."""

    told: list[str] = dataclasses.field(default_factory=list)

    def auth_for(self, starts: Iterable[URL]) -> None:
        self.told.extend(str(url) for url in starts)


async def test_an_injected_transport_is_told_the_start_urls(tmp_path: Path) -> None:
    transport = TellsStarts({f"{BASE}/": page("hi")})
    await run(tmp_path, transport, engine_config())
    assert transport.told == [f"{BASE}/"]
