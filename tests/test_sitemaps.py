"""Sitemaps: robots.txt lists a (gzipped) index, which lists urlsets of pages no link reaches."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from crawler import CrawlConfig, CrawlStatus
from crawler.model.sitemaps import MAX_BYTES, decompress, parse
from spiders.site import SiteSpider
from storage import RequestState
from tests.crawling import crawl
from tests.sites.serve import serve

ORPHANS = [f"/orphan/{i}" for i in range(5)]


def _urlset(base: str, paths: list[str]) -> bytes:
    entries = "".join(f"<url><loc>{base}{p}</loc><lastmod>2026-01-01</lastmod></url>"
                      for p in paths)
    return (f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns='
            f'"http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>').encode()


def _app(robots_lists_sitemap: bool) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        base = f"http://{request.host}"
        path = request.path
        if path == "/robots.txt":
            line = f"Sitemap: {base}/sitemap_index.xml.gz\n" if robots_lists_sitemap else ""
            return web.Response(text=f"User-agent: *\nAllow: /\n{line}")
        if path == "/sitemap_index.xml.gz":
            index = (f"<sitemapindex><sitemap><loc>{base}/a.xml</loc></sitemap>"
                     f"<sitemap><loc>{base}/b.xml</loc></sitemap>"
                     f"<sitemap><loc>http://elsewhere.invalid/c.xml</loc></sitemap>"
                     "</sitemapindex>").encode()
            return web.Response(body=gzip.compress(index), content_type="application/gzip")
        if path in ("/a.xml", "/sitemap.xml"):
            return web.Response(body=_urlset(base, ORPHANS[:3]), content_type="application/xml")
        if path == "/b.xml":
            return web.Response(body=_urlset(base, [*ORPHANS[3:], "/"]),
                                content_type="text/xml")
        return web.Response(text=f"<title>{path}</title><a href='/linked'>x</a>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


@pytest.mark.parametrize("listed", [True, False], ids=["robots-lists-index", "sitemap.xml"])
async def test_sitemaps_find_pages_no_link_reaches(tmp_path: Path, listed: bool) -> None:
    async with serve(_app(listed)) as base:
        spider = SiteSpider([base + "/"], sitemaps=True)
        out = await crawl(spider, tmp_path / "s.db", CrawlConfig(delay=0))
        plain = await crawl(SiteSpider([base + "/"]), tmp_path / "p.db", CrawlConfig(delay=0))
    assert out.result.status is CrawlStatus.FINISHED
    found = {i["url"].removeprefix(base) for i in out.items}
    expected_orphans = set(ORPHANS) if listed else set(ORPHANS[:3])
    assert found == {"/", "/linked", *expected_orphans}
    assert {i["url"].removeprefix(base) for i in plain.items} == {"/", "/linked"}
    # Sitemap files are fetched and recorded, but are not pages: no items for them.
    sitemap_rows = [r for u, r in out.rows.items() if u.endswith((".xml", ".gz"))]
    assert sitemap_rows and all(r[0] == RequestState.DONE for r in sitemap_rows)


def test_parse_reads_urlsets_indexes_and_gzip() -> None:
    base = URL("http://h/")
    plain = parse(_urlset("http://H", ["/a", "/b#frag", "/a"]) + b"<url><loc>mailto:x</loc>",
                  base)
    assert plain.pages == ["http://h/a", "http://h/b"] and plain.sitemaps == []
    index = parse(gzip.compress(b"<sitemapindex><sitemap><loc>/s1.xml</loc></sitemap>"), base)
    assert index.sitemaps == ["http://h/s1.xml"] and index.pages == []


def test_a_gzip_bomb_sitemap_is_refused_with_bounded_memory() -> None:
    bomb = gzip.compress(b"\0" * (MAX_BYTES + 1024))
    with pytest.raises(ValueError, match="over"):
        decompress(bomb)
    with pytest.raises(ValueError, match="broken gzip"):
        decompress(b"\x1f\x8b" + b"garbage")


def test_empty_and_cdata_locations() -> None:
    body = (b"<urlset><url><loc><![CDATA[http://h/a?x=1&y=2]]></loc></url>"
            b"<url><loc>  </loc></url><url><loc></loc></url></urlset>")
    assert parse(body, URL("http://h/sitemap.xml")).pages == ["http://h/a?x=1&y=2"]
