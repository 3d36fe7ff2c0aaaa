"""A state file knows which crawl it holds (issue 10, items 11 and 12), through `crawl`.

Another site's command, another spider class of the same name or narrower settings are
refused and the file is left untouched; a deeper `--max-depth` on resume finds the deeper
pages, each fetched once; the default state file of `crawl site` is one per site.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from crawler import CrawlConfig, StateFileError
from crawler.cli.crawl import site_state_name
from spiders.site import SiteSpider
from tests.crawling import crawl as crawl_in_process
from tests.helpers import (
    EXIT_USAGE,
    Site,
    assert_items_match_site,
    crawl,
    crawl_ok,
    describe,
    duplicate_items,
    export_items,
    sha256,
    state_counts,
    throttled_site,
)
from tests.sites.serve import serve

PAGES = 200
ROBOTS = "/robots.txt"


@pytest.fixture(scope="module")
def site_a() -> Iterator[Site]:
    with throttled_site(PAGES) as served:
        yield served


@pytest.fixture(scope="module")
def site_b() -> Iterator[Site]:
    with throttled_site(PAGES) as served:
        yield served


def command(site: Site, state: Path | None, *extra: str) -> list[str]:
    where = [] if state is None else ["--state", str(state)]
    return ["site", site.start, *where, "--delay", "0", "--quiet", *extra]


def page_fetches(fetched: Counter[str]) -> Counter[str]:
    return Counter({path: n for path, n in fetched.items() if path != ROBOTS})


def assert_refused(proc_args: list[str], state: Path, *must_say: str) -> str:
    before = sha256(state)
    proc = crawl(*proc_args)
    assert proc.returncode == EXIT_USAGE, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    for words in (str(state), "--fresh", *must_say):
        assert words in proc.stderr, f"the refusal does not say {words!r}:\n{proc.stderr}"
    assert sha256(state) == before, "a refused state file was changed"
    return proc.stderr


def test_another_sites_command_is_refused_and_the_first_crawl_completes(
        site_a: Site, site_b: Site, tmp_path: Path) -> None:
    state = tmp_path / "a.db"
    crawl_ok(*command(site_a, state, "--max-pages", "30"))
    assert not state_counts(state).complete
    before_b = site_b.requests()
    message = assert_refused(command(site_b, state), state, "start URL", site_a.start,
                             site_b.start)
    assert "max_pages" not in message  # only what differs is named
    assert not page_fetches(site_b.requests() - before_b), "site B was crawled"
    crawl_ok(*command(site_a, state))
    assert_items_match_site(export_items(state), site_a.base, pages=PAGES)


def test_scope_and_settings_that_change_the_crawl_are_refused(site_a: Site,
                                                              tmp_path: Path) -> None:
    state = tmp_path / "a.db"
    crawl_ok(*command(site_a, state, "--max-pages", "10", "--max-depth", "3"))
    assert_refused(command(site_a, state, "--max-depth", "2"), state, "max_depth", "3", "2")
    assert_refused(command(site_a, state, "--max-depth", "3", "--exclude", "/s1/"), state,
                   "exclude")
    assert_refused(command(site_a, state, "--max-depth", "3", "--ignore-robots"), state,
                   "obey_robots")
    # Only --max-pages changed: the same crawl goes on.
    crawl_ok(*command(site_a, state, "--max-depth", "3", "--max-pages", "20"))
    # --fresh starts over with the new settings.
    crawl_ok(*command(site_a, state, "--max-depth", "1", "--fresh"))


def test_raising_max_depth_on_resume_finds_the_deeper_pages_once(site_a: Site,
                                                                 tmp_path: Path) -> None:
    state = tmp_path / "deep.db"
    before = site_a.requests()
    first = crawl_ok(*[a for a in command(site_a, state, "--max-depth", "1") if a != "--quiet"])
    assert "beyond --max-depth are kept" in first.stderr, first.stderr
    shallow = {item["url"] for item in export_items(state)}
    assert state_counts(state).complete
    widened = crawl_ok(*command(site_a, state, "--max-depth", "2"))
    assert "widening the crawl" in widened.stderr and "max_depth 1 -> 2" in widened.stderr
    deeper = {item["url"] for item in export_items(state)}
    assert shallow < deeper, "raising --max-depth found no deeper page"
    proc = crawl_ok(*command(site_a, state))  # no --max-depth: the whole site
    assert "Traceback" not in proc.stderr
    fetched = page_fetches(site_a.requests() - before)
    twice = sorted(path for path, n in fetched.items() if n > 1)
    assert not twice, f"fetched more than once: {twice[:10]}"
    items = export_items(state)
    assert_items_match_site(items, site_a.base, pages=PAGES)
    urls, requests = duplicate_items(state)
    assert not urls and not requests, (urls, requests)
    # Narrowing a crawl afterwards is refused.
    assert_refused(command(site_a, state, "--max-depth", "1"), state, "max_depth")


def test_a_file_without_an_identity_adopts_this_commands(site_a: Site, site_b: Site,
                                                         tmp_path: Path) -> None:
    state = tmp_path / "old.db"
    crawl_ok(*command(site_a, state, "--max-pages", "5"))
    with sqlite3.connect(state) as conn:  # as an older version left it
        conn.execute("DELETE FROM meta WHERE key = 'identity'")
    conn.close()
    proc = crawl_ok(*command(site_a, state, "--max-pages", "10"))
    assert "did not record which crawl it holds" in proc.stderr, proc.stderr
    assert_refused(command(site_b, state), state, "start URL")  # from now on it knows


def test_default_state_file_is_one_per_site(site_a: Site, site_b: Site,
                                            tmp_path: Path) -> None:
    assert site_a.base.split(":")[1] == site_b.base.split(":")[1]  # the same host name
    for site in (site_a, site_b):
        crawl_ok(*command(site, None), cwd=tmp_path)
    files = sorted(tmp_path.glob("*.crawl.db"))
    assert len(files) == 2, files
    owners = []
    for path in files:
        items = export_items(path)
        owner = site_a if items[0]["url"].startswith(site_a.base + "/") else site_b
        assert_items_match_site(items, owner.base, pages=PAGES)
        owners.append(owner)
    assert owners[0] is not owners[1]
    # The same command finds its own file again: no new file, nothing fetched again.
    before = site_a.requests()
    crawl_ok(*command(site_a, None), cwd=tmp_path)
    assert sorted(tmp_path.glob("*.crawl.db")) == files
    assert not page_fetches(site_a.requests() - before)


async def test_another_spider_class_of_the_same_name_is_refused(tmp_path: Path) -> None:
    class Impostor(SiteSpider):
        name = "site"  # the same name, another class

    state = tmp_path / "s.db"
    with throttled_site(20) as site:
        await crawl_in_process(SiteSpider([site.start]), state)
        before = sha256(state)
        with pytest.raises(StateFileError) as refused:
            await crawl_in_process(Impostor([site.start]), state)
    message = str(refused.value)
    assert "Impostor" in message and "SiteSpider" in message and "--fresh" in message, message
    assert sha256(state) == before


def test_default_state_name_depends_on_every_start_url_and_nothing_else() -> None:
    name = site_state_name
    assert name(["http://127.0.0.1:8001/"]).startswith("127.0.0.1_8001-")
    assert name(["http://127.0.0.1:8001/"]) != name(["http://127.0.0.1:8002/"])
    assert name(["https://example.org/docs/"]).startswith("example.org-")
    assert name(["https://example.org/docs/"]).endswith(".crawl.db")
    # The same start URLs in any order and spelling: one file.
    assert name(["http://a.test/", "http://b.test/"]) == name(["HTTP://B.test:80/",
                                                               "http://a.test#top"])
    # Another scheme, path or set of start URLs: another file.
    names = {name(urls) for urls in (["http://a.test/"], ["https://a.test/"],
                                     ["http://a.test/x"], ["http://a.test/", "http://b.test/"])}
    assert len(names) == 4, names


def _shortcut_app(fetched: Counter[str]) -> web.Application:
    """/ links /a then /r; /a links /c (depth 2: parked); /r redirects to /c (depth 1, found
    after /c was parked)."""
    pages = {"/": '<a href="/a">a</a><a href="/r">r</a>', "/a": '<a href="/c">c</a>',
             "/c": "the end"}

    async def handle(request: web.Request) -> web.StreamResponse:
        fetched[request.path] += 1
        if request.path == "/r":
            await asyncio.sleep(1.5)  # /a's outcome is committed first (a flush a second)
            raise web.HTTPFound("/c")
        if request.path not in pages:
            raise web.HTTPNotFound()
        return web.Response(text=f"<html><body>{pages[request.path]}</body></html>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def test_a_parked_page_found_again_within_the_depth_is_crawled(tmp_path: Path) -> None:
    fetched: Counter[str] = Counter()
    config = CrawlConfig(delay=0, workers=1, per_host=1, max_depth=1, obey_robots=False)
    async with serve(_shortcut_app(fetched)) as base:
        out = await crawl_in_process(SiteSpider([base + "/"]), tmp_path / "s.db", config)
    assert fetched == {"/": 1, "/a": 1, "/r": 1, "/c": 1}, fetched
    assert {i["url"] for i in out.items} == {base + p for p in ("/", "/a", "/c")}
    assert out.result.counts.parked == 0


def test_a_state_file_under_the_old_default_name_is_pointed_out(site_a: Site,
                                                                tmp_path: Path) -> None:
    old = tmp_path / "127.0.0.1.crawl.db"
    crawl_ok(*command(site_a, old, "--max-pages", "5"))
    proc = crawl_ok(*command(site_a, None, "--max-pages", "5"), cwd=tmp_path)
    assert "--state 127.0.0.1.crawl.db" in proc.stderr, proc.stderr
