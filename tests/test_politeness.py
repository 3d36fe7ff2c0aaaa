"""Per-host concurrency and delay, as the servers see them, across several named hosts.

Host names a.test, b.test, c.test are mapped to 127.0.0.2-4 by the crawl's static resolve
option, so each is a separate server (and a separate politeness slot) on loopback.
"""

from __future__ import annotations

from pathlib import Path

from yarl import URL

from crawler import CrawlConfig, CrawlStatus, Spider
from spiders.site import SiteSpider
from tests.crawling import crawl
from tests.sites import multihost
from tests.sites.serve import serve_many

NAMES = ["a.test", "b.test", "c.test"]
PAGES = 12
# The server stamps a request when its handler starts; a new connection's set-up can shift
# that stamp by a little, so a gap is allowed to come up short by this much.
STAMP_SLACK = 0.015


async def _crawl_hosts(tmp_path: Path, per_host: int, delay: float,
                       workers: int = 12) -> tuple[list[multihost.RequestRecord], int]:
    app = multihost.make_app(delay_s=0.05, pages_per_host=PAGES)
    async with serve_many(app, multihost.loopback_hosts(len(NAMES))) as bases:
        port = URL(bases[0]).port
        resolve = {name: str(URL(base).host) for name, base in zip(NAMES, bases, strict=True)}
        spider: Spider = SiteSpider([f"http://{name}:{port}/" for name in NAMES])
        config = CrawlConfig(per_host=per_host, delay=delay, workers=workers,
                             resolve=resolve)
        out = await crawl(spider, tmp_path / "p.db", config)
    assert out.result.status is CrawlStatus.FINISHED
    return app[multihost.RECORDS], len(out.items)


async def test_per_host_cap_and_delay_hold_while_hosts_run_in_parallel(tmp_path: Path) -> None:
    records, items = await _crawl_hosts(tmp_path, per_host=2, delay=0.12)
    assert items == PAGES * len(NAMES)
    for name in NAMES:
        paths = [r.path for r in records if r.host == name]
        # Every page once, after one robots.txt, all inside the same politeness rules.
        assert len(paths) == PAGES + 1 and paths.count("/robots.txt") == 1
        assert multihost.max_concurrency(records, name) <= 2
        assert multihost.min_start_gap(records, name) >= 0.12 - STAMP_SLACK
    # While one host waits out its delay, the others are being fetched.
    assert multihost.peak_parallel_hosts(records) == len(NAMES)


async def test_per_host_concurrency_is_reached_but_not_exceeded(tmp_path: Path) -> None:
    records, _ = await _crawl_hosts(tmp_path, per_host=3, delay=0.0)
    for name in NAMES:
        # Pages respond after 50 ms and each links to the next few: the cap is the limit.
        assert multihost.max_concurrency(records, name) == 3


async def test_a_single_connection_per_host(tmp_path: Path) -> None:
    records, _ = await _crawl_hosts(tmp_path, per_host=1, delay=0.0, workers=8)
    for name in NAMES:
        assert multihost.max_concurrency(records, name) == 1
    assert multihost.peak_parallel_hosts(records) == len(NAMES)
