"""The Python API: `crawl` from a plain script (a subprocess), `crawl_async` inside a running
event loop, `iter_items`, and `Crawler(spider, store)`; the spider's class attributes and the
arguments apply with the command line's precedence (defaults < spider < arguments)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler import (
    ConfigError,
    Crawler,
    CrawlError,
    CrawlStatus,
    Response,
    Spider,
    StateFileError,
    crawl,
    crawl_async,
    iter_items,
)
from crawler.config import CrawlConfig
from storage.sqlite import SQLiteStore
from tests.crawling import read_items
from tests.helpers import crawl_ok, stats_json
from tests.sites import catalog
from tests.sites.serve import serve, serve_in_thread

ROOT = Path(__file__).resolve().parent.parent


def run_config(state: Path) -> dict[str, Any]:
    """The settings the state file's last run was made with."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        (config,) = conn.execute("SELECT config FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    data: dict[str, Any] = json.loads(config)
    return data


class Pages(Spider):
    """Every page is an item; every link is followed."""

    name = "pages"
    max_pages = 2  # overridden by the arguments below
    per_host = 3  # not overridden: applies
    delay = 0.0

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": str(response.url)}
        for href in response.links():
            yield response.follow(href, self.parse)


# -- a script -------------------------------------------------------------------------------

SCRIPT = """\
import asyncio, json, sys
from crawler import Spider, crawl, iter_items

class Shop(Spider):
    name = "shop"
    start_urls = [sys.argv[1]]
    max_pages = 3          # the spider's own: the argument below wins
    per_host = 2           # applies
    delay = 0.0

    async def parse(self, response):
        loop = type(asyncio.get_running_loop()).__module__
        yield {"url": str(response.url), "loop": loop}
        for href in response.links():
            yield response.follow(href, self.parse)

result = crawl(Shop, state=sys.argv[2], max_pages=5, workers=2)

async def items():
    return [item async for item in iter_items(sys.argv[2])]

print(json.dumps({"status": result.status, "pages": result.stats.pages,
                  "items": asyncio.run(items())}))
"""


def run_script(path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=path.parent, check=False)


def test_crawl_from_a_plain_script(tmp_path: Path) -> None:
    script = tmp_path / "shop.py"
    script.write_text(SCRIPT, encoding="utf-8")
    state = tmp_path / "shop.db"
    with serve_in_thread(catalog.make_app()) as base:
        proc = run_script(script, base + "/", str(state))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "page_limit" and out["pages"] == 5
    assert [item["url"] for item in out["items"]] == [i["url"] for i in read_items(state)]
    assert len(out["items"]) == 5
    # uvloop's loop when installed, as the command line does.
    assert {item["loop"] for item in out["items"]} == {"uvloop"}
    config = run_config(state)
    assert (config["max_pages"], config["per_host"], config["workers"], config["delay"]) \
        == (5, 2, 2, 0.0)


SLOW_SCRIPT = """\
import sys
from crawler import Spider, crawl

class Slow(Spider):
    name = "slow"
    start_urls = [sys.argv[1]]
    delay = 0.0

    async def parse(self, response):
        print("page", flush=True)
        yield {"url": str(response.url)}
        for href in response.links():
            yield response.follow(href, self.parse)

print(crawl(Slow, state=sys.argv[2], workers=1).status, flush=True)
"""


def slow_pages(seconds: float) -> web.Application:
    """Endless pages, each slow to answer: a crawl that is still running when stopped."""
    async def page(request: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        n = int(request.match_info.get("n") or 0)
        return web.Response(content_type="text/html",
                            text=f'<a href="/{n + 1}">next</a><a href="/{n + 2}">next</a>')

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/{n:\\d+}", page)
    return app


def test_ctrl_c_stops_a_scripts_crawl_gracefully(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SCRIPT, encoding="utf-8")
    state = tmp_path / "slow.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with serve_in_thread(slow_pages(0.05)) as base:
        proc = subprocess.Popen([sys.executable, str(script), base + "/", str(state)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=tmp_path)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "page\n"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == "interrupted"
    # Stopped, not killed: every page fetched is stored, and the rest is queued for the next
    # run.
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        (done,) = conn.execute("SELECT count(*) FROM requests WHERE state = 2").fetchone()
        (queued,) = conn.execute("SELECT count(*) FROM requests WHERE state = 0").fetchone()
    assert done >= 1 and queued >= 1
    assert len(read_items(state)) == done


# -- inside a running event loop -------------------------------------------------------------


async def test_crawl_async_inside_a_running_loop(tmp_path: Path) -> None:
    state = tmp_path / "pages.db"
    async with serve(catalog.make_app()) as base:
        result = await crawl_async(Pages, state=state, start_urls=[base + "/"], max_pages=4,
                                   max_retries=1)
    assert result.status is CrawlStatus.PAGE_LIMIT
    assert result.stats.pages == 4
    config = run_config(state)
    # defaults < spider < arguments
    assert (config["max_pages"], config["per_host"], config["max_retries"]) == (4, 3, 1)
    assert config["timeout"] == CrawlConfig().timeout
    items = [item async for item in iter_items(state)]
    assert items == read_items(state) and len(items) == 4
    with pytest.raises(CrawlError, match=r"await crawl_async\(\.\.\.\)"):
        crawl(Pages, state=tmp_path / "never.db")
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize(("settings", "says"), [
    ({"max_page": 3, "dealy": 1}, "unknown setting(s): dealy, max_page"),
    ({"max_pages": "ten"}, "max_pages must be a whole number, not 'ten'"),
])
async def test_bad_settings_are_refused_before_the_file_is_made(
        tmp_path: Path, settings: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        await crawl_async(Pages, state=tmp_path / "x.db", start_urls=["http://127.0.0.1:9/"],
                          **settings)
    assert says in str(caught.value)
    assert not (tmp_path / "x.db").exists()


async def test_iter_items_reads_a_crawl_while_it_runs(tmp_path: Path) -> None:
    release = asyncio.Event()

    @web.middleware
    async def hold_the_last(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
        if request.path == f"/p/{catalog.PRODUCTS}":
            await release.wait()
        return await handler(request)

    app = catalog.make_app()
    app.middlewares.append(hold_the_last)
    state = tmp_path / "live.db"
    async with serve(app) as base:
        running = asyncio.create_task(crawl_async(Pages, state=state, start_urls=[base + "/"],
                                                  max_pages=100))
        seen: list[Any] = []
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if state.exists():
                seen = [item async for item in iter_items(state)]
        assert seen, "no item was committed while the crawl ran"
        assert not running.done()
        release.set()
        result = await running
    assert result.status is CrawlStatus.FINISHED
    final = [item async for item in iter_items(state)]
    assert final[: len(seen)] == seen  # commit order: what was read then comes first
    assert final == read_items(state)
    assert len(final) == len({item["url"] for item in final}) == 2 * catalog.PRODUCTS + 1


async def test_iter_items_of_a_missing_file_is_a_state_file_error(tmp_path: Path) -> None:
    with pytest.raises(StateFileError):
        _ = [item async for item in iter_items(tmp_path / "missing.db")]
    assert not (tmp_path / "missing.db").exists()


# -- Crawler(spider, store) -------------------------------------------------------------------


class Spaced(Spider):
    name = "spaced"
    delay = 0.15
    max_pages = 3
    per_host = 1

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for href in response.links():
            yield response.follow(href, self.parse)


async def test_crawler_applies_the_spiders_own_settings(tmp_path: Path) -> None:
    starts: list[float] = []

    @web.middleware
    async def note(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
        if request.path != "/robots.txt":
            starts.append(time.monotonic())
        return await handler(request)

    app = catalog.make_app()
    app.middlewares.append(note)
    async with serve(app) as base:
        store = await SQLiteStore.open(tmp_path / "s.db")
        try:
            crawler = Crawler(Spaced([base + "/"]), store)
            result = await crawler.run()
        finally:
            await store.close()
    assert (crawler.config.delay, crawler.config.max_pages) == (0.15, 3)
    assert result.status is CrawlStatus.PAGE_LIMIT and result.stats.pages == 3
    assert len(starts) == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.14, gaps


# -- the README's catalog.py -------------------------------------------------------------------


def readme_catalog() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n(# catalog\.py\n.*?)```", text, re.S)
    assert found, "README.md has no ```python block starting with # catalog.py"
    return found.group(1)


def test_the_readme_catalog_runs_as_a_script_and_as_a_spider(tmp_path: Path) -> None:
    code = readme_catalog()
    with serve_in_thread(catalog.make_app()) as base:
        local = code.replace('"https://shop.example/"', repr(base + "/"))
        local = local.replace("delay = 1.0", "delay = 0.0")  # a local site, in a test
        assert local.count(base) == 1 and "delay = 0.0" in local
        (tmp_path / "catalog.py").write_text(local, encoding="utf-8")
        proc = run_script(tmp_path / "catalog.py")
        assert proc.returncode == 0, proc.stderr
        again = crawl_ok("run", "catalog.py", "--state", "again.db", "--quiet", cwd=tmp_path)
    kept = catalog.PRODUCTS - len(catalog.NO_PRICE) - len(catalog.SAME_SKU)
    lines = proc.stdout.splitlines()
    assert lines[0] == f"finished {kept} items"
    printed = [line.split() for line in lines[1:]]
    assert len(printed) == kept and len({sku for sku, _ in printed}) == kept
    for sku, price in printed:
        assert catalog.price(int(sku.removeprefix("SKU-"))) == f"{float(price):.2f}"
    dropped = {"no price": len(catalog.NO_PRICE), "duplicate sku": len(catalog.SAME_SKU)}
    stats = stats_json(tmp_path / "catalog.db")
    assert stats["dropped_items"] == dropped and stats["items"] == kept
    with sqlite3.connect(f"file:{tmp_path / 'again.db'}?mode=ro", uri=True) as conn:
        counted = dict(conn.execute("SELECT name, value FROM counters WHERE name LIKE 'dropped%'"))
        (items,) = conn.execute("SELECT count(*) FROM items").fetchone()
    assert counted == {f"dropped: {reason}": n for reason, n in dropped.items()}, again.stderr
    assert items == kept
