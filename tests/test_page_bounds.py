"""What one hostile page may cost: links past `max_links` are counted, not stored or held in
memory, and long URLs count for more (a page of them must not fill the disk).

The crawl runs as a `crawl site` subprocess, so its peak RSS is its own, read from the
kernel when it exits (wait4); the server runs in a thread of the test process."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from pathlib import Path

from aiohttp import web

from crawler import CrawlConfig
from crawler.engine.budget import ByteBudget
from crawler.policy import admission
from crawler.policy.admission import RecentKeys
from crawler.urls import canon as urls
from crawler.urls.resolve import JoinCache, Resolver
from spiders.site import SiteSpider
from tests.crawling import crawl
from tests.helpers import CLI
from tests.sites.serve import serve, serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
MANY = 300_000  # links on /many (distinct) and on /same (all to one URL)
LONG = 4_000  # distinct 2,000-character URLs on /long
LONG_URL = 2_000
MAX_LINKS = 10_000  # the default of `max_links`
# Before the cap, these pages took the crawl to 527 MiB; after it, 247 MiB alone and up to
# 346 MiB within the whole suite (which of the three big pages are fetched, decoded and read
# at once varies), most of it the parsed trees (lexbor's DOM takes up to ~30 bytes a byte of
# markup). The limit is between the two, with room for that variation.
RSS_LIMIT_MB = 420


def _site() -> web.Application:
    many = ("<html><head><title>many</title></head><body>"
            + "".join(f"<a href=/{n:06d}>" for n in range(MANY))).encode()
    same = ("<html><head><title>same</title></head><body>"
            + '<a href="/one">1</a>' * MANY).encode()
    pad = "x" * LONG_URL
    long = ("<html><head><title>long</title></head><body>"
            + "".join(f'<a href="/l/{n}-{pad}"></a>' for n in range(LONG))).encode()
    pages = {"/many": many, "/same": same, "/long": long}

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=pages.get(request.path, b"<title>small</title>"),
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def _crawl(*args: str) -> int:
    """Run `crawl ARGS` to the end; its peak RSS in MiB."""
    proc = subprocess.Popen([*CLI, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read() if proc.stderr else ""
    assert os.waitstatus_to_exitcode(status) == 0, err
    return usage.ru_maxrss // 1024  # KiB on Linux


def test_a_page_adds_at_most_max_links_and_memory_stays_bounded(tmp_path: Path) -> None:
    db = tmp_path / "bounds.db"
    with serve_in_thread(_site()) as base:
        seeds = [base + "/many", base + "/same", base + "/long"]
        rss = _crawl("site", *seeds, "--state", str(db), "--max-pages", "3", "--delay", "0",
                     "--ignore-robots", "--quiet")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        counters = dict(conn.execute("SELECT name, value FROM counters"))
        titles = sorted(row[0] for row in conn.execute("SELECT json_extract(data, '$.title') "
                                                       "FROM items"))
    assert titles == ["long", "many", "same"]
    long_admitted = MAX_LINKS // (1 + (len(base) + LONG_URL + 10) // 256)
    assert rows == 3 + MAX_LINKS + 1 + long_admitted
    assert counters["skipped_duplicate"] == MAX_LINKS - 1  # /same: its first 10,000 links
    assert counters["skipped_link_limit"] == 2 * (MANY - MAX_LINKS) + LONG - long_admitted
    assert db.stat().st_size < 8 * 2**20
    assert rss < RSS_LIMIT_MB, f"peak RSS {rss} MiB"


def test_recent_keys_are_bounded_by_characters_too() -> None:
    recent = RecentKeys(1_000, chars=10_000)
    first = {f"http://h/{n}-{'x' * 1_000}" for n in range(11)}
    recent.update(first)
    second = {"http://h/a"}
    recent.update(second)
    assert all(key in recent for key in first | second)
    recent.update({f"http://h/b{n}-{'x' * 1_000}" for n in range(11)})
    assert not any(key in recent for key in first), "the oldest generation went"
    assert admission.RECENT_CHARS <= 8_000_000


def test_long_hrefs_are_joined_but_not_cached() -> None:
    joins = JoinCache()
    resolver = Resolver(urls.parsed(urls.parse_absolute("http://h.test/a/b")), joins)
    before = len(joins)
    long = "c?" + "q" * 1_000
    assert resolver.join(long) == f"http://h.test/a/{long}"
    assert len(joins) == before
    assert resolver.join("c?short") == "http://h.test/a/c?short"
    assert len(joins) == before + 1


async def test_the_tree_budget_lets_big_pages_wait_in_order_and_one_oversize_alone() -> None:
    budget = ByteBudget(10)
    got: list[str] = []

    async def claim(name: str, size: int) -> int:
        held = await budget.acquire(size)
        got.append(name)
        return held

    first = await claim("a", 6)
    waiting = [asyncio.create_task(claim(n, s)) for n, s in [("big", 50), ("b", 2), ("c", 2)]]
    await asyncio.sleep(0)
    assert got == ["a"], "nothing overtakes the oversize claim waiting for the whole budget"
    budget.release(first)
    held = await waiting[0]
    assert (held, got) == (10, ["a", "big"])
    budget.release(held)
    assert [await t for t in waiting[1:]] == [2, 2]
    assert budget.used == 4
    cancelled = asyncio.create_task(claim("d", 8))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    budget.release(2)
    budget.release(2)
    assert budget.used == 0


async def test_a_page_of_200000_nested_divs_is_crawled_with_the_rest(tmp_path: Path) -> None:
    # 2.2 MB whose tree lexbor builds in time growing with the square of its depth: 90 s of
    # CPU before the nesting cap (crawler/html/nesting.py), well under a second after it.
    depth = 200_000
    deep = (b"<html><head><title>deep</title></head><body>" + b"<div>" * depth
            + b'<a href="/below">below</a>' + b"</div>" * depth + b"</body></html>")
    pages = {"/": b'<title>root</title><a href="/deep">d</a><a href="/p/1">1</a>',
             "/deep": deep}

    async def handle(request: web.Request) -> web.Response:
        body = pages.get(request.path, f"<title>{request.path}</title>".encode())
        return web.Response(body=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    config = CrawlConfig(delay=0, obey_robots=False, max_retries=0)
    async with serve(app) as base:
        out = await asyncio.wait_for(crawl(SiteSpider([base + "/"]), tmp_path / "deep.db",
                                           config), 60)
    titles = {item["url"]: item["title"] for item in out.items}
    assert titles == {base + "/": "root", base + "/deep": "deep", base + "/p/1": "/p/1",
                      base + "/below": "/below"}
    assert out.result.counts.failed == 0
