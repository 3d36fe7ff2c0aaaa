"""Benchmark: the built-in site spider on the generated test site, served by another process.

    python bench/site_bench.py --pages 20000

Prints pages/s, CPU-ms per page (the crawler's process only), peak RSS and the state file's
size. The site is tests/sites/generated.py (titles, ~15 links a page, cycles, duplicates,
non-HTML files, broken links); the server's CPU is not counted.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import measure, site_process
from crawler import CrawlConfig
from spiders.site import SiteSpider
from tests.sites.generated import make_app


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--per-host", type=int, default=32)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()
    config = CrawlConfig(workers=args.workers, per_host=args.per_host, delay=0.0)
    with site_process(functools.partial(make_app, pages=args.pages), args.port) as base, \
            tempfile.TemporaryDirectory() as tmp:
        m = measure(SiteSpider([base + "/"]), Path(tmp) / "bench.db", config)
    print(f"generated site of {args.pages:,} pages; workers={args.workers} "
          f"per_host={args.per_host} delay=0; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    print(m.report())


if __name__ == "__main__":
    main()
