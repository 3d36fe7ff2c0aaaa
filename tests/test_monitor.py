"""What a crawl reports about itself (speed, statuses, hosts, connection pool, DNS) checked
against what the servers and the operating system saw."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from yarl import URL

from crawler import CrawlConfig, Crawler, CrawlStatus, Response
from crawler.http.fetcher import Fetcher
from crawler.http.pool import live_counts as _live_counts
from crawler.http.pool import process_sockets
from crawler.observe.metrics import Snapshot
from spiders.site import SiteSpider
from storage.sqlite import SQLiteStore
from tests.sites import monitor
from tests.sites.serve import serve, serve_many

NAMES = ["a.test", "b.test", "c.test"]
PAGES = 20
GONE_EVERY = 5


async def _run(spider: SiteSpider, path: Path, config: CrawlConfig) -> tuple[Crawler, Any]:
    store = await SQLiteStore.open(path)
    try:
        crawler = Crawler(spider, store, config)
        result = await crawler.run()
    finally:
        await store.close()
    return crawler, result


def _stored_stats(path: Path) -> dict[str, Any]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        (text,) = conn.execute("SELECT stats FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    data: dict[str, Any] = json.loads(text)
    return data


async def test_metrics_match_what_the_servers_saw(tmp_path: Path) -> None:
    app = monitor.make_app(pages=PAGES, gone_every=GONE_EVERY, slow=frozenset({"b.test"}),
                           slow_delay=0.15)
    async with serve_many(app, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]) as bases:
        port = URL(bases[0]).port
        resolve = {name: str(URL(base).host) for name, base in zip(NAMES, bases, strict=True)}
        spider = SiteSpider([f"http://{name}:{port}/" for name in NAMES])
        config = CrawlConfig(per_host=2, delay=0.0, workers=6, resolve=resolve)
        crawler, result = await _run(spider, tmp_path / "m.db", config)
    assert result.status is CrawlStatus.FINISHED
    seen = app[monitor.SEEN]
    gone = monitor.expected_gone(PAGES, GONE_EVERY)
    s: Snapshot = result.stats

    # Every page answered 200, every missing link and robots.txt 404. Robots.txt is an
    # answer (timed, counted by status and host) but not a page.
    assert dict(s.statuses) == {200: PAGES * 3, 404: (gone + 1) * 3}
    assert s.pages == (PAGES + gone) * 3
    assert s.timings.count == s.pages + 3
    assert s.failed == s.retried == 0 and not s.errors
    for name in NAMES:
        assert seen[name].requests == PAGES + gone + 1
        assert crawler.metrics.hosts[f"{name}:{port}"].requests == PAGES + gone + 1

    # DNS: one lookup per host, and every later connection to it was a cache hit.
    pool = s.pool
    assert pool is not None
    assert pool.dns_misses == 3
    assert pool.dns_hits + pool.dns_misses == pool.created
    # Keep-alive: the connections the servers saw are the ones counted as opened, at most
    # two a host (the per-host cap), and every other request reused one of them.
    assert pool.created == sum(len(seen[name].ports) for name in NAMES)
    assert 3 <= pool.created <= 6
    assert pool.created + pool.reused == sum(seen[name].requests for name in NAMES)
    # At the end every connection is idle in the pool, and nothing waits for one.
    assert (pool.in_use, pool.idle, pool.waiting) == (0, pool.created, 0)

    # The slow host stands out, and the fast ones answered in well under its delay.
    assert s.slowest[0].host == f"b.test:{port}"
    slow_avg = s.slowest[0].avg_seconds
    assert slow_avg is not None and slow_avg >= 0.15
    assert all(row.avg_seconds is not None and row.avg_seconds < 0.1 for row in s.slowest[1:])

    # The state file holds the same figures, with the hosts.
    stored = _stored_stats(tmp_path / "m.db")
    assert stored["pages"] == s.pages
    assert stored["statuses"] == {"200": PAGES * 3, "404": (gone + 1) * 3}
    assert stored["pool"]["created"] == pool.created
    assert {h["host"]: h["requests"] for h in stored["hosts"]} == {
        f"{name}:{port}": PAGES + gone + 1 for name in NAMES}
    assert stored["crawl"]["done"] == (PAGES + gone) * 3
    assert stored["crawl"]["queued"] == 0


def _client_sockets(server_port: int) -> int:
    """This process's TCP sockets connected to `server_port`, as the kernel lists them."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == server_port and fields[9] in inodes:
                count += 1
    return count


class _Sampling(SiteSpider):
    """Compares the pool's socket count with the kernel's from inside each callback."""

    crawler: Crawler
    port: int

    def __init__(self, start: list[str]) -> None:
        super().__init__(start)
        self.samples: list[tuple[int, int, int, int]] = []

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        snap = self.crawler.snapshot()
        pool = snap.pool
        assert pool is not None and pool.in_use is not None and pool.idle is not None
        self.samples.append((pool.created, pool.in_use, pool.idle,
                             _client_sockets(self.port)))
        async for value in super().parse(response):
            yield value


async def test_socket_count_matches_the_processes_open_sockets(tmp_path: Path) -> None:
    app = monitor.make_app(pages=80, fanout=4, delay=0.02)
    async with serve(app) as base:
        spider = _Sampling([base + "/"])
        spider.port = URL(base).port or 0
        store = await SQLiteStore.open(tmp_path / "s.db")
        try:
            spider.crawler = Crawler(spider, store, CrawlConfig(per_host=4, workers=4,
                                                                delay=0.0))
            result = await spider.crawler.run()
        finally:
            await store.close()
    assert result.status is CrawlStatus.FINISHED
    final = max(created for created, *_ in spider.samples)
    assert final == 4  # the four workers' connections, kept alive and reused
    settled = [(used + idle, kernel) for created, used, idle, kernel in spider.samples
               if created == final]
    assert len(settled) >= 20
    # Once no connection is being opened, the pool's count is exactly the kernel's.
    assert all(pool == kernel for pool, kernel in settled), settled


def test_process_sockets_counts_what_the_os_has_open() -> None:
    before = process_sockets()
    assert before is not None
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        assert process_sockets() == before + 6
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    assert process_sockets() == before


async def test_pool_figures_are_none_when_aiohttp_internals_change() -> None:
    class Unfamiliar:  # a connector of a future aiohttp, with none of today's internals
        pass

    assert _live_counts(Unfamiliar()) == (None, None, None)  # type: ignore[arg-type]

    class Changed:
        def __init__(self) -> None:
            self._acquired = 3  # no len()
            self._conns = {"k": [("not a protocol", 0.0)]}
            self._waiters = None

    assert _live_counts(Changed()) == (None, None, None)  # type: ignore[arg-type]
    closed = Fetcher(CrawlConfig())
    pool = closed.pool()
    assert (pool.in_use, pool.idle, pool.waiting, pool.created) == (None, None, None, 0)


async def test_snapshot_works_before_and_after_the_run(tmp_path: Path) -> None:
    app = monitor.make_app(pages=5)
    async with serve(app) as base:
        store = await SQLiteStore.open(tmp_path / "b.db")
        try:
            crawler = Crawler(SiteSpider([base + "/"]), store, CrawlConfig(delay=0.0))
            before = crawler.snapshot()
            result = await crawler.run()
            after = crawler.snapshot()
        finally:
            await store.close()
    assert before.crawl is None and before.pool is None and before.pages == 0
    assert after.state == "ended" and after.pages == result.stats.pages == 6
    assert after.crawl is not None and after.crawl.done == 6 and after.crawl.queued == 0
    json.dumps(after.to_dict())  # plain data all the way down
