"""Benchmark: the built-in site spider on the generated test site, served by another process.

    python bench/site_bench.py --pages 20000

Prints pages/s, CPU-ms per page (the crawler's process only), peak RSS and the state file's
size. The site is tests/sites/generated.py (titles, ~15 links a page, cycles, duplicates,
non-HTML files, broken links); the server's CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from crawler import CrawlConfig, Crawler
from spiders.site import SiteSpider
from storage import SQLiteStore
from tests.sites.generated import make_app


def _serve(pages: int, port: int, ready: multiprocessing.synchronize.Event) -> None:
    async def main() -> None:
        runner = web.AppRunner(make_app(pages=pages), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def _crawl(url: str, state: Path, config: CrawlConfig) -> tuple[int, int]:
    store = await SQLiteStore.open(state)
    try:
        result = await Crawler(SiteSpider([url]), store, config).run()
    finally:
        await store.close()
    return result.counts.done + result.counts.failed, result.counts.items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--per-host", type=int, default=32)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(args.pages, args.port, ready),
                                     daemon=True)
    server.start()
    if not ready.wait(60):
        sys.exit("the benchmark site did not start")
    config = CrawlConfig(workers=args.workers, per_host=args.per_host, delay=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "bench.db"
        cpu0, wall0 = time.process_time(), time.perf_counter()
        requests, items = asyncio.run(_crawl(f"http://127.0.0.1:{args.port}/", state, config))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    server.terminate()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"site: {args.pages:,} pages generated; crawled {requests:,} requests, {items:,} items")
    version = sys.version.split()[0]
    print(f"workers={args.workers} per_host={args.per_host} delay=0  python {version}"
          f"  cpus={os.cpu_count()}")
    print(f"pages/s:        {requests / wall:,.0f}  ({wall:.2f} s wall)")
    print(f"CPU-ms/page:    {1000 * cpu / requests:.2f}  ({cpu:.2f} s CPU)")
    print(f"peak RSS:       {peak_mb:,.0f} MB")
    print(f"state file:     {size / 1e6:,.1f} MB  ({size / max(requests, 1):,.0f} bytes/request)")


if __name__ == "__main__":
    main()
