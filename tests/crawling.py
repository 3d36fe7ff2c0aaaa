"""Running a spider in-process against a temporary state file, for tests."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from crawler import CrawlConfig, Crawler, CrawlResult, Spider
from storage.sqlite import SQLiteStore

FAST = CrawlConfig(delay=0.0, per_host=8, workers=16, retry_backoff=0.05, timeout=10.0)


@dataclass
class Outcome:
    result: CrawlResult
    items: list[dict[str, Any]]
    # url -> (state, status, error, attempts)
    rows: dict[str, tuple[int, int | None, str | None, int]]


async def crawl(spider: Spider, path: Path, config: CrawlConfig = FAST, *,
                fresh: bool = False) -> Outcome:
    store = await SQLiteStore.open(path)
    try:
        result = await Crawler(spider, store, config, fresh=fresh).run()
    finally:
        await store.close()
    return Outcome(result, read_items(path), read_rows(path))


def read_items(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return [json.loads(d) for (d,) in conn.execute("SELECT data FROM items ORDER BY id")]


def read_rows(path: Path) -> dict[str, tuple[int, int | None, str | None, int]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        # A failure's kind is a column of its own; a row's error reads "kind: details".
        return {url: (state, status, error, attempts) for url, state, status, error, attempts
                in conn.execute("SELECT url, state, status, coalesce(kind || ': ', '') || error,"
                                " attempts FROM requests")}


def titled_pages_app() -> web.Application:
    """A site where every path is a page titled with its path, and links nowhere."""
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"<title>{request.path}</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app
