"""`crawl bench`: crawl a local benchmark site and measure the crawler's own process.

The site (`python -m benchsite`) runs in a separate process, so its CPU is not counted.
CPU time counts every thread of this process (the SQLite thread too); peak RSS is the
process's high-water mark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crawler.cli import running
from crawler.cli.crawl import check_urls
from crawler.cli.exits import EXIT_OK
from crawler.config import CrawlConfig
from crawler.engine.crawler import CrawlResult
from crawler.errors import ConfigError
from crawler.observe import logs

SITE_START_TIMEOUT = 30.0
CHECKOUT = Path(__file__).resolve().parent.parent.parent  # where crawler/ is, in a checkout

report_log = logging.getLogger(logs.REPORT)


@dataclass(frozen=True, slots=True)
class BenchResult:
    requests: int  # requests finished (done or failed)
    items: int
    urls: int  # requests in the state file: finished, and queued for later
    wall: float
    cpu: float
    peak_rss: int  # bytes
    state_bytes: int
    event_loop: str

    @property
    def pages_per_second(self) -> float:
        return self.requests / self.wall if self.wall > 0 else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * self.cpu / max(self.requests, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pages_per_second": round(self.pages_per_second, 1),
                "cpu_ms_per_page": round(self.cpu_ms_per_page, 3),
                "state_bytes_per_url": round(self.state_bytes / max(self.urls, 1), 1)}

    def report(self) -> str:
        mb = 1024 * 1024
        return "\n".join([
            f"pages       {self.requests:,} in {self.wall:.2f} s: "
            f"{self.pages_per_second:,.0f} pages/s ({self.items:,} items)",
            f"CPU         {self.cpu_ms_per_page:.2f} ms a page ({self.cpu:.2f} s, "
            f"{self.event_loop} event loop)",
            f"peak RSS    {self.peak_rss / mb:,.0f} MB",
            f"state file  {self.state_bytes / 1e6:,.1f} MB for {self.urls:,} URLs "
            f"({self.state_bytes / max(self.urls, 1):,.0f} bytes a URL)",
        ])


@contextlib.asynccontextmanager
async def benchmark_site(options: Sequence[str]) -> AsyncIterator[str]:
    """Start `python -m benchsite OPTIONS` and yield its base URL; stop it afterwards.

    It runs in a session of its own, so a Ctrl-C meant for the crawl does not kill the site
    under it; its stderr goes to a file, which nobody has to keep reading."""
    env = _with_checkout()
    with tempfile.TemporaryFile() as errors:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchsite", *options, stdout=asyncio.subprocess.PIPE,
            stderr=errors, start_new_session=True, env=env)
        try:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), SITE_START_TIMEOUT)
            except TimeoutError:
                line = b""
            text = line.decode().strip()
            if not text.startswith("READY "):
                _stop(proc)
                await proc.wait()
                errors.seek(0)
                why = errors.read().decode(errors="replace").strip().splitlines()
                raise ConfigError("the benchmark site did not start"
                                  + (f": {why[-1]}" if why else ""))
            yield text.split(" ", 1)[1]
        finally:
            if proc.returncode is None:
                _stop(proc)
                await proc.wait()


def _with_checkout() -> dict[str, str]:
    """The site's environment: the benchmark site is a tool of the source checkout, not
    installed with the package (a wheel installs `crawler`, `storage` and `spiders` only),
    so its folder goes on the site's path."""
    if importlib.util.find_spec("benchsite") is not None:
        return dict(os.environ)
    if not (CHECKOUT / "benchsite" / "__main__.py").is_file():
        raise ConfigError("crawl bench serves its site from a source checkout's benchsite/ "
                          "folder, which is not installed with the package: run it from a "
                          "checkout, or measure a site you serve with --url URL")
    path = os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def _stop(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()


async def measure(crawl: Callable[[], Awaitable[CrawlResult]], state: Path,
                  event_loop: str) -> tuple[BenchResult, CrawlResult]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = await crawl()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    size = sum(p.stat().st_size for p in state.parent.glob(state.name + "*"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    c = result.counts
    return BenchResult(c.done + c.failed, c.items, c.done + c.failed + c.queued, wall, cpu,
                       peak, size, event_loop), result


def command(args: argparse.Namespace) -> int:
    """`crawl bench`: a crawl of a local benchmark site, measured."""
    if args.pages < 1 or args.links < 1 or args.site_pages < 0 or args.page_size < 0:
        raise ConfigError("--pages and --links must be at least 1; --site-pages and "
                          "--page-size at least 0")
    config = CrawlConfig(workers=args.workers, per_host=args.per_host, delay=args.delay,
                         max_pages=args.pages, obey_robots=args.obey_robots,
                         output=tuple(args.output))
    if args.state and Path(args.state).exists() and Path(args.state).stat().st_size:
        raise ConfigError(f"--state {args.state}: the file exists; crawl bench starts a new "
                          "crawl, so give it a file that does not")
    args.fresh, args.retry_failed = True, False
    with tempfile.TemporaryDirectory(prefix="crawl-bench-") as tmp:
        state = Path(args.state or Path(tmp) / "bench.crawl.db")
        figures = running.run(_bench(config, state, args), args.event_loop)
    if args.json:
        print(json.dumps(figures.to_dict(), indent=2))
    else:
        print(figures.report())
    return EXIT_OK


async def _bench(config: CrawlConfig, state: Path, args: argparse.Namespace) -> BenchResult:
    _, loop_name = running.loop_factory(args.event_loop)
    site_options = ["--pages", str(args.site_pages), "--links", str(args.links),
                    "--size", str(args.page_size)]
    async with contextlib.AsyncExitStack() as stack:
        url = args.url or await stack.enter_async_context(benchmark_site(site_options))
        check_urls([url])
        what = (f"a finite site of {args.site_pages:,} pages" if args.site_pages
                else "an endless site") if not args.url else url
        report_log.info("bench: %s, %d links a page; %d workers, per-host %d, delay %g, "
                        "robots.txt %s, state file on", what, args.links, config.workers,
                        config.per_host, config.delay, "on" if config.obey_robots else "off")
        from spiders.site import SiteSpider  # noqa: PLC0415 (see crawl.site)

        spider = SiteSpider([url.rstrip("/") + "/"])
        figures, _ = await measure(
            lambda: running.run_crawl(spider, config, str(state), args), state, loop_name)
        return figures
