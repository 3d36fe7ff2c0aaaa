"""A callback that blocks the event loop: response times stay the server's, and it is named.

The server runs on its own loop in another thread, so it answers in milliseconds while the
crawl's loop is blocked (time.sleep releases the GIL)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler import CrawlConfig, Response, Spider
from tests.crawling import crawl
from tests.sites.serve import serve_in_thread

PAGES = 6
SLEEP = 0.3  # seconds each page's callback blocks the loop


class Sleepy(Spider):
    name = "sleepy"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        if "/p/" in response.url:
            time.sleep(SLEEP)  # noqa: ASYNC251  (the mistake under test)
        yield {"url": response.url}
        for request in response.follow_all():
            yield request


async def test_a_blocking_callback_does_not_inflate_response_times_and_is_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:

    async def handle(request: web.Request) -> web.Response:
        links = "".join(f'<a href="/p/{n}">{n}</a>' for n in range(PAGES))
        body = f"<html><body>{links if request.path == '/' else ''}</body></html>"
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    config = CrawlConfig(delay=0, workers=8, per_host=8, obey_robots=False, timeout=10)
    with caplog.at_level(logging.WARNING, logger="crawler"), serve_in_thread(app) as base:
        out = await crawl(Sleepy([base + "/"]), tmp_path / "sleepy.db", config)
    assert len(out.items) == PAGES + 1
    timings = out.result.stats.timings
    assert timings.count == PAGES + 1
    # Each of the pages is answered in milliseconds; the others wait out 0.3 s blocks.
    assert timings.max is not None and timings.max < SLEEP / 2, timings
    warnings = [r.getMessage() for r in caplog.records if "blocked the event loop" in r.message]
    assert len(warnings) == 1, warnings
    assert "callback parse blocked the event loop for 0.3s" in warnings[0]
    assert "asyncio.to_thread" in warnings[0]
