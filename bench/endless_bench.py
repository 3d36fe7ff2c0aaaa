"""Benchmark: memory stays flat while the frontier grows (it lives in SQLite, not in RAM).

    python bench/endless_bench.py --pages 2000 5000 20000

An endless site: every page links to 50 URLs never seen before, so a crawl of N pages
discovers about 50*N URLs. Each size runs in a fresh process; peak RSS should not grow
with the number of queued URLs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from bench.common import measure, site_process
from crawler import CrawlConfig
from spiders.site import SiteSpider

LINKS = 50


def make_endless_app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info.get("n", "0"))
        links = "".join(f'<li><a href="/p/{n * LINKS + k + 1}">page {n * LINKS + k + 1}</a>'
                        for k in range(LINKS))
        return web.Response(text=f"<html><head><title>Page {n}</title></head><body><ul>"
                                 f"{links}</ul></body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/p/{n}", page)
    return app


def one(pages: int, port: int) -> None:
    config = CrawlConfig(workers=32, per_host=32, delay=0.0, max_pages=pages)
    with site_process(make_endless_app, port) as base, tempfile.TemporaryDirectory() as tmp:
        m = measure(SiteSpider([base + "/"]), Path(tmp) / "endless.db", config)
    print(f"--- {pages:,} pages of the endless site ({LINKS} new links a page)")
    print(m.report(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[2_000, 5_000, 20_000])
    parser.add_argument("--port", type=int, default=8792)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.port)
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; workers=32 per_host=32")
    for n in args.pages:  # a fresh process each, so peak RSS is that size's own
        subprocess.run([sys.executable, __file__, "--one", str(n), "--port", str(args.port)],
                       check=True)


if __name__ == "__main__":
    main()
