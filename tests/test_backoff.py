"""Server-driven backoff and per-host policies, as servers on 127.0.0.x observe them."""

from __future__ import annotations

import itertools
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from crawler import CrawlConfig, CrawlStatus, HostPolicy
from crawler.policy import frontier
from spiders.site import SiteSpider
from tests.crawling import crawl
from tests.sites import multihost
from tests.sites.serve import serve_many

PAGES = 8
SLACK = 0.015  # a request's start stamp can move by a connection set-up


def _app(busy_answers: list[tuple[int, dict[str, str]]], *, after: int = 0
         ) -> tuple[web.Application, dict[str, list[float]]]:
    """busy.test answers requests after its first `after` with `busy_answers`, then pages;
    calm.test always answers pages. Each host has PAGES pages linked from /. Start times are
    kept per host, and the time each busy answer was sent under "refused"."""
    starts: dict[str, list[float]] = defaultdict(list)
    hits: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.StreamResponse:
        host = request.host.split(":")[0]
        if request.path == "/robots.txt":
            return web.Response(status=404)
        starts[host].append(time.monotonic())
        hits[host] += 1
        if host == "busy.test" and after < hits[host] <= after + len(busy_answers):
            status, headers = busy_answers[hits[host] - after - 1]
            starts["refused"].append(time.monotonic())
            return web.Response(status=status, headers=headers)
        links = "".join(f'<a href="/p{i}">p</a>' for i in range(PAGES - 1))
        return web.Response(text=f"<title>{request.path}</title>{links}",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app, starts


async def _crawl_two(tmp_path: Path, app: web.Application, per_host: int = 2,
                     **settings: object) -> None:
    async with serve_many(app, multihost.loopback_hosts(2)) as bases:
        port = URL(bases[0]).port
        names = ["busy.test", "calm.test"]
        resolve = {n: str(URL(b).host) for n, b in zip(names, bases, strict=True)}
        config = CrawlConfig(delay=0, per_host=per_host, retry_backoff=0.01, max_retries=4,
                             resolve=resolve, **settings)  # type: ignore[arg-type]
        out = await crawl(SiteSpider([f"http://{n}:{port}/" for n in names]),
                          tmp_path / "b.db", config)
    assert out.result.status is CrawlStatus.FINISHED
    assert out.result.counts.items == 2 * PAGES


async def test_retry_after_holds_the_whole_host_and_only_that_host(tmp_path: Path) -> None:
    # "/" succeeds and reveals the other pages; the next request is refused for 1 s.
    app, starts = _app([(429, {"Retry-After": "1"})], after=1)
    await _crawl_two(tmp_path, app, per_host=1)
    (refused,) = starts["refused"]
    busy, calm = starts["busy.test"], starts["calm.test"]
    # Nothing more went to busy.test for the second it asked for, though pages were queued...
    assert not [t for t in busy if refused < t < refused + 1.0 - SLACK]
    assert len(busy) == PAGES + 1
    # ...while calm.test was crawled in full meanwhile.
    assert len(calm) == PAGES
    assert max(calm) < refused + 1.0


async def test_a_burst_of_503s_slows_the_host_and_it_recovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first penalty scaled down from 1 s (test_frontier checks the real figures): the
    # doubling and halving are the crawler's own, and the test takes 1 s, not 15.
    first = 0.15
    monkeypatch.setattr(frontier, "FIRST_PENALTY", first)
    app, starts = _app([(503, {})] * 3)
    await _crawl_two(tmp_path, app)
    busy = starts["busy.test"]
    gaps = [b - a for a, b in itertools.pairwise(busy)]
    # 1x, then 2x, then 4x the first penalty after each 503 (no Retry-After given)...
    assert gaps[0] >= first - SLACK and gaps[1] >= 2 * first - SLACK
    assert gaps[2] >= 4 * first - SLACK
    # ...and each success halves it, so the last pages come faster than the worst gap.
    assert gaps[-1] < gaps[2] / 2


async def test_a_host_policy_overrides_the_crawls(tmp_path: Path) -> None:
    app, starts = _app([])
    policy = {"busy.test": HostPolicy(per_host=1, delay=0.25)}
    await _crawl_two(tmp_path, app, host_policies=policy)
    busy, calm = starts["busy.test"], starts["calm.test"]
    assert min(b - a for a, b in itertools.pairwise(busy)) >= 0.25 - SLACK
    # The other host keeps the crawl's settings (no delay).
    assert min(b - a for a, b in itertools.pairwise(calm)) < 0.1
