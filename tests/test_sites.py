"""Checks of the test websites themselves, with a plain aiohttp client (no crawler)."""

from __future__ import annotations

import asyncio
import http.client
import re
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import aiohttp
import pytest
from selectolax.lexbor import LexborHTMLParser, LexborNode
from yarl import URL

from tests.sites import books, generated, multihost
from tests.sites.generated import ExpectedPage
from tests.sites.multihost import RequestRecord
from tests.sites.serve import (
    check_loopback,
    serve,
    serve_in_thread,
    serve_many,
    serve_many_in_thread,
)

# ----------------------------------------------------------------------------------------
# A deliberately simple, independent BFS over a site.

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_-]+)""", re.I)


def _decode(body: bytes, header_charset: str | None) -> str:
    if header_charset:
        return body.decode(header_charset)
    match = _META_CHARSET.search(body[:1024])
    return body.decode(match.group(1).decode() if match else "utf-8")


def _canonical(base: URL, href: str) -> URL | None:
    url = base.join(URL(href)).with_fragment(None)
    if url.scheme not in ("http", "https"):
        return None
    if url.raw_path == "/" and not url.raw_query_string:
        # str(URL("http://h:1")) has no slash although .path is "/": normalize to "http://h:1/"
        url = url.with_path("/")
    return url


@dataclass
class Crawl:
    pages: dict[str, ExpectedPage] = field(default_factory=dict)
    non_html: set[str] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)
    offsite: set[str] = field(default_factory=set)
    content_types: dict[str, str] = field(default_factory=dict)


async def bfs(session: aiohttp.ClientSession, start: str, concurrency: int = 32) -> Crawl:
    result = Crawl()
    origin = URL(start).origin()
    seen = {start}
    level = [start]
    sem = asyncio.Semaphore(concurrency)

    async def visit(url: str) -> list[str]:
        async with sem, session.get(url, allow_redirects=False) as resp:
            body = await resp.read()
            result.content_types[url] = resp.headers.get("Content-Type", "")
            if resp.status == 404:
                result.broken.add(url)
                return []
            assert resp.status == 200, (url, resp.status)
            if resp.content_type != "text/html":
                result.non_html.add(url)
                return []
            tree = LexborHTMLParser(_decode(body, resp.charset))
            title_node = tree.css_first("title")
            title = " ".join(title_node.text().split()) if title_node is not None else ""
            anchors = tree.css("a[href]")
            result.pages[url] = ExpectedPage(title=title, links=len(anchors))
            found: list[str] = []
            for a in anchors:
                target = _canonical(URL(url), a.attributes["href"] or "")
                if target is None:
                    continue
                if target.origin() != origin:
                    result.offsite.add(str(target))
                    continue
                found.append(str(target))
            return found

    while level:
        found = await asyncio.gather(*(visit(u) for u in level))
        level = []
        for urls in found:
            for u in urls:
                if u not in seen:
                    seen.add(u)
                    level.append(u)
    return result


# ----------------------------------------------------------------------------------------
# serve helpers


def test_check_loopback() -> None:
    assert check_loopback("127.0.0.1") == "127.0.0.1"
    assert check_loopback("127.3.2.1") == "127.3.2.1"
    for bad in ("0.0.0.0", "localhost", "10.0.0.1", "::1", ""):
        with pytest.raises(ValueError):
            check_loopback(bad)


def _http_get(base_url: str, path: str, host: str | None = None) -> tuple[int, bytes]:
    url = URL(base_url)
    assert url.host is not None and url.port is not None
    conn = http.client.HTTPConnection(url.host, url.port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_serve_in_thread() -> None:
    app = generated.make_app(pages=20)
    with serve_in_thread(app) as base:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
        status, body = _http_get(base, "/")
        assert status == 200 and b"<title>" in body
    assert app[generated.REQUESTS]["/"] == 1
    with pytest.raises(OSError):
        _http_get(base, "/")


def test_serve_many_in_thread() -> None:
    app = multihost.make_app(delay_s=0, pages_per_host=3)
    hosts = multihost.loopback_hosts(2)
    with serve_many_in_thread(app, hosts) as bases:
        ports = {URL(b).port for b in bases}
        assert len(ports) == 1
        assert [URL(b).host for b in bases] == hosts
        for name, base in zip(("a.test", "b.test"), bases, strict=True):
            status, body = _http_get(base, "/", host=f"{name}:{URL(base).port}")
            assert status == 200 and name.encode() in body
    assert sorted(r.host for r in app[multihost.RECORDS]) == ["a.test", "b.test"]


async def test_serve_same_app_twice_and_separate_ports() -> None:
    app = multihost.make_app(delay_s=0, pages_per_host=3)
    async with AsyncExitStack() as stack:
        base_a = await stack.enter_async_context(serve(app, "127.0.0.2"))
        try:  # the same port on another address, as a politeness test may do
            base_b = await stack.enter_async_context(
                serve(app, "127.0.0.3", port=URL(base_a).port or 0)
            )
        except OSError:  # that port is taken on 127.0.0.3 by someone else: any port will do
            base_b = await stack.enter_async_context(serve(app, "127.0.0.3"))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        for base, name in ((base_a, "a.test"), (base_b, "b.test")):
            async with session.get(base + "/p/1.html", headers={"Host": name}) as resp:
                assert resp.status == 200
                assert f"{name} page 1" in await resp.text()
    async with serve_many(app, ["127.0.0.4", "127.0.0.5"], same_port=False) as bases:
        assert len(bases) == 2
        assert len({URL(b).port for b in bases}) == 2
    assert [r.host for r in app[multihost.RECORDS]] == ["a.test", "b.test"]


# ----------------------------------------------------------------------------------------
# generated site


@pytest.mark.parametrize(("pages", "seed"), [(2200, 1), (1, 1), (7, 3), (60, 5)])
async def test_generated_model_matches_bfs(pages: int, seed: int) -> None:
    app = generated.make_app(pages=pages, seed=seed)
    async with serve(app) as base, aiohttp.ClientSession() as session:
        crawl = await bfs(session, base + "/")
        expected = generated.expected_pages(base, pages=pages, seed=seed)
        assert len(expected) == pages
        assert base + "/" in expected
        assert set(crawl.pages) == set(expected)
        assert crawl.pages == expected
        assert crawl.non_html == generated.non_html_urls(base, pages=pages, seed=seed)
        assert crawl.broken == generated.broken_urls(base, pages=pages, seed=seed)
        assert {URL(u).host for u in crawl.offsite} == set(generated.EXTERNAL_HOSTS)
        # every page, resource and broken URL was fetched exactly once, nothing else was
        requests: Counter[str] = app[generated.REQUESTS]
        fetched = set(crawl.pages) | crawl.non_html | crawl.broken
        assert set(requests) == {str(URL(u).relative()) for u in fetched}
        assert set(requests.values()) == {1}
        assert app[generated.FOREIGN_REQUESTS] == []
        hosts_seen: Counter[str] = app[generated.HOSTS_SEEN]
        assert set(hosts_seen) == {URL(base).raw_authority}


async def test_generated_features() -> None:
    app = generated.make_app()
    expected = generated.expected_pages("HTTP://127.0.0.1:80")
    assert "http://127.0.0.1/" in expected
    async with serve(app) as base, aiohttp.ClientSession() as session:
        port = URL(base).port
        pages = generated.expected_pages(base)
        titles = [p.title for p in pages.values()]
        assert len(set(titles)) == len(titles)
        assert any(not t.isascii() for t in titles)
        assert any("&" in t for t in titles)
        assert all(t == " ".join(t.split()) for t in titles)
        lists = [u for u in pages if "?page=" in u]
        assert len(lists) > 50
        # a query string is part of the page's identity; the bare path is not a page
        async with session.get(lists[0].partition("?")[0]) as resp:
            assert resp.status == 404
        async with session.get(base + "/s0/list?page=99999") as resp:
            assert resp.status == 404
        # declared content types of resources
        types = {}
        for url in generated.non_html_urls(base):
            async with session.get(url) as resp:
                assert resp.status == 200
                types[URL(url).path_qs] = resp.headers["Content-Type"]
        assert types == {
            "/files/report.pdf": "application/pdf",
            "/files/download?id=7": "application/pdf",
            "/img/logo.png": "image/png",
            "/files/notes.txt": "text/plain; charset=utf-8",
        }
        # meta-declared charsets: plain text/html header, non-ASCII title
        special = generated.special_charset_urls(base)
        assert {"iso-8859-1", "windows-1252"} <= set(special.values())
        for url, charset in special.items():
            async with session.get(url) as resp:
                body = await resp.read()
                if charset.startswith("utf-8"):
                    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
                    assert b'<meta charset="iso-8859-1">' in body
                    continue
                assert resp.headers["Content-Type"] == "text/html"
                assert charset.encode() in body
                assert not pages[url].title.isascii()
                assert pages[url].title.encode(charset) in body
                with pytest.raises(UnicodeDecodeError):
                    body.decode("utf-8")
        # absolute links are built from the Host header
        async with session.get(base + "/", headers={"Host": f"localhost:{port}"}) as resp:
            root = await resp.text()
        assert f"//localhost:{port}/" in root
        assert f"//127.0.0.1:{port}/" not in root
        # a request for another host is recorded (and is a 404: no such path here)
        async with session.get(
            base + "/ext.html", headers={"Host": "other.invalid"}
        ) as resp:
            assert resp.status == 404
        async with session.head(base + "/") as resp:
            assert resp.status == 200
    assert app[generated.FOREIGN_REQUESTS] == [("other.invalid", "/ext.html")]
    assert app[generated.REQUESTS]["/"] == 2


def test_generated_is_deterministic() -> None:
    base = "http://127.0.0.1:8080"
    one = generated.expected_pages(base, pages=300, seed=7)
    assert one == generated.expected_pages(base, pages=300, seed=7)
    assert one != generated.expected_pages(base, pages=300, seed=8)
    assert len(one) == 300


# ----------------------------------------------------------------------------------------
# books


def _text(tree: LexborHTMLParser | LexborNode, selector: str) -> str:
    node = tree.css_first(selector)
    assert node is not None, selector
    return " ".join(node.text().split())


@pytest.mark.parametrize(("count", "per_page"), [(100, 20), (45, 20)])
async def test_books(count: int, per_page: int) -> None:
    app = books.make_app(books=count, per_page=per_page)
    async with serve(app) as base, aiohttp.ClientSession() as session:
        async with session.get(base + "/", allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers["Location"] == "/catalogue/page-1.html"
        # follow "next" links from the first list page, collecting product links
        url: URL | None = URL(base + "/catalogue/page-1.html")
        detail_urls: list[URL] = []
        list_titles: list[str] = []
        list_pages = 0
        while url is not None:
            async with session.get(url) as resp:
                assert resp.status == 200
                tree = LexborHTMLParser(await resp.text())
            list_pages += 1
            for pod in tree.css("article.product_pod"):
                a = pod.css_first("h3 a")
                assert a is not None
                detail_urls.append(url.join(URL(a.attributes["href"] or "")))
                list_titles.append(a.attributes["title"] or "")
            nxt = tree.css_first("li.next a")
            url = url.join(URL(nxt.attributes["href"] or "")) if nxt is not None else None
        assert list_pages == -(-count // per_page)
        assert [u.path for u in detail_urls] == books.book_paths(count)
        scraped: list[dict[str, object]] = []
        for durl in detail_urls:
            async with session.get(durl) as resp:
                assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
                tree = LexborHTMLParser(await resp.text())
            stock = re.search(r"\((\d+) available\)", _text(tree, "p.instock.availability"))
            assert stock is not None
            upc = next(
                (row.css_first("td") for row in tree.css("table.table-striped tr")
                 if _text(row, "th") == "UPC"),
                None,
            )
            assert upc is not None
            breadcrumb = [a.attributes["href"] for a in tree.css("ul.breadcrumb a")]
            assert len(breadcrumb) == 3 and breadcrumb[0] == breadcrumb[1]
            scraped.append(
                {
                    "title": _text(tree, "h1"),
                    "price": float(_text(tree, "p.price_color").removeprefix("£")),
                    "stock": int(stock.group(1)),
                    "upc": upc.text(),
                }
            )
    expected = books.expected_books(count)
    assert scraped == expected
    assert list_titles == [b["title"] for b in expected]
    titles = [str(b["title"]) for b in expected]
    assert any("&" in t for t in titles) and any(not t.isascii() for t in titles)
    assert len(set(titles)) == len(titles)


# ----------------------------------------------------------------------------------------
# multihost


def _records(spec: Iterable[tuple[str, float, float]]) -> list[RequestRecord]:
    return [RequestRecord(host=h, path="/", start=s, end=e) for h, s, e in spec]


def test_multihost_helpers_on_hand_made_records() -> None:
    recs = _records(
        [
            ("a", 0.0, 1.0),
            ("a", 0.5, 1.5),
            ("a", 1.5, 2.0),  # starts exactly when the previous one ends: no overlap
            ("a", 0.7, 0.8),
            ("b", 3.0, 4.0),
            ("b", 3.25, 3.5),
            ("c", 10.0, 11.0),
        ]
    )
    assert multihost.max_concurrency(recs, "a") == 3
    assert multihost.max_concurrency(recs, "b") == 2
    assert multihost.max_concurrency(recs, "c") == 1
    assert multihost.max_concurrency(recs, "zzz") == 0
    assert multihost.min_start_gap(recs, "a") == pytest.approx(0.2)
    assert multihost.min_start_gap(recs, "b") == pytest.approx(0.25)
    assert multihost.min_start_gap(recs, "c") == float("inf")
    assert multihost.peak_parallel_hosts(recs) == 1
    assert not multihost.overlapping_hosts(recs)
    recs += _records([("c", 0.9, 1.2), ("b", 1.1, 1.3)])
    assert multihost.peak_parallel_hosts(recs) == 3
    assert multihost.overlapping_hosts(recs)
    assert multihost.max_concurrency(recs, "a") == 3
    assert multihost.overlapping_hosts(_records([("a", 0, 1), ("b", 0.999, 2)]))
    assert not multihost.overlapping_hosts(_records([("a", 0, 1), ("b", 1, 2)]))
    assert not multihost.overlapping_hosts(_records([("a", 0, 1), ("a", 0.5, 2)]))
    groups = multihost.records_by_host(recs)
    assert set(groups) == {"a", "b", "c"}
    assert [r.start for r in groups["a"]] == [0.0, 0.5, 0.7, 1.5]


async def test_multihost_live() -> None:
    delay = 0.05
    app = multihost.make_app(delay_s=delay, pages_per_host=12)
    hosts = multihost.loopback_hosts(3)
    names = ["a.test", "b.test", "c.test"]
    async with serve_many(app, hosts) as bases, aiohttp.ClientSession() as session:
        port = URL(bases[0]).port

        async def get(base: str, name: str, path: str) -> tuple[int, str]:
            async with session.get(base + path, headers={"Host": f"{name}:{port}"}) as r:
                return r.status, await r.text()

        # three requests to a.test at once, one to each of b.test and c.test alongside
        t0 = time.monotonic()
        results = await asyncio.gather(
            *(get(bases[0], "a.test", f"/p/{i}.html") for i in (1, 2, 3)),
            get(bases[1], "b.test", "/"),
            get(bases[2], "c.test", "/"),
        )
        assert time.monotonic() - t0 < 5 * delay
        assert all(status == 200 for status, _ in results)
        assert "a.test page 1" in results[0][1] and "c.test page 0" in results[4][1]
        assert (await get(bases[0], "a.test", "/p/12.html"))[0] == 404
        assert (await get(bases[0], "a.test", "/robots.txt"))[0] == 200
        recs: list[RequestRecord] = app[multihost.RECORDS].copy()
        assert multihost.max_concurrency(recs, "a.test") == 3
        assert multihost.peak_parallel_hosts(recs) == 3
        assert all(r.end - r.start >= delay * 0.9 for r in recs)
        # each host's pages are reachable from "/" and link only to the same host
        app[multihost.RECORDS].clear()
        for base, name in zip(bases, names, strict=True):
            async with aiohttp.ClientSession(
                headers={"Host": f"{name}:{port}"}
            ) as host_session:
                crawl = await bfs(host_session, base + "/")
            assert sorted(URL(u).path for u in crawl.pages) == sorted(
                multihost.host_page_paths(12)
            )
            assert not crawl.offsite and not crawl.broken
        records: list[RequestRecord] = app[multihost.RECORDS]
        assert {r.host for r in records} == set(names)
