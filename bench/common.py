"""Shared benchmark plumbing: a site served by a separate process, and the crawl measured."""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from crawler import CrawlConfig, Crawler, Spider
from storage.sqlite import SQLiteStore

AppFactory = Callable[[], web.Application]


def _serve(factory: AppFactory, port: int, ready: multiprocessing.synchronize.Event) -> None:
    async def main() -> None:
        runner = web.AppRunner(factory(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def site_process(factory: AppFactory, port: int) -> Iterator[str]:
    """Serve the app in another process (its CPU is not the crawler's); yields the base URL."""
    ready = multiprocessing.get_context("fork").Event()
    proc = multiprocessing.get_context("fork").Process(
        target=_serve, args=(factory, port, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(60):
            sys.exit("the benchmark site did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.join(5)


@dataclass(frozen=True)
class Measurement:
    requests: int
    items: int
    queued: int
    wall: float
    cpu: float
    peak_rss_mb: float
    state_bytes: int

    def report(self) -> str:
        n = max(self.requests, 1)
        return "\n".join([
            f"requests:     {self.requests:,} ({self.items:,} items, {self.queued:,} queued)",
            f"pages/s:      {self.requests / self.wall:,.0f}  ({self.wall:.2f} s wall)",
            f"CPU-ms/page:  {1000 * self.cpu / n:.2f}  ({self.cpu:.2f} s CPU)",
            f"peak RSS:     {self.peak_rss_mb:,.0f} MB",
            f"state file:   {self.state_bytes / 1e6:,.1f} MB "
            f"({self.state_bytes / max(self.requests + self.queued, 1):,.0f} bytes per URL)",
        ])


def measure(spider: Spider, state: Path, config: CrawlConfig) -> Measurement:
    """Crawl in this process; CPU counts every thread (SQLite's too)."""

    async def run() -> tuple[int, int, int]:
        store = await SQLiteStore.open(state)
        try:
            result = await Crawler(spider, store, config).run()
        finally:
            await store.close()
        c = result.counts
        return c.done + c.failed, c.items, c.queued

    cpu0, wall0 = time.process_time(), time.perf_counter()
    requests, items, queued = asyncio.run(run())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    size = sum(p.stat().st_size for p in state.parent.glob(state.name + "*"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Measurement(requests, items, queued, wall, cpu, peak, size)
