"""`crawl site` and `crawl run`: from the arguments to a spider, a config and a state file,
then the crawl, what is said when it ends, and the exit status."""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from yarl import URL

from crawler.cli import options, running
from crawler.cli.exits import EXIT_INTERRUPTED, EXIT_NOTHING_FETCHED, EXIT_OK
from crawler.config import layered
from crawler.engine.crawler import CrawlResult, CrawlStatus
from crawler.errors import ConfigError, SpiderError
from crawler.model.loader import load_spider_class, user_error
from crawler.model.spider import Spider
from crawler.observe import logs, report
from crawler.urls.canon import parse_absolute, parsed
from storage import CrawlCounts, name_crawl, shown

status_log = logging.getLogger(logs.STATUS)
report_log = logging.getLogger(logs.REPORT)


def site(args: argparse.Namespace) -> int:
    """`crawl site URL...`: the built-in site spider."""
    # Imported here only: `crawl run spiders.mine:Mine` must find the user's own `spiders`.
    from spiders.site import SiteSpider  # noqa: PLC0415

    check_urls(args.urls)
    spider = SiteSpider(start_urls=args.urls, sitemaps=args.sitemaps)
    default = site_state_name(args.urls)
    # Before the name had a port and a digest, it was the first start URL's host alone.
    legacy = f"{URL(args.urls[0].strip()).host or 'site'}.crawl.db"
    if args.state is None and not Path(default).exists() and Path(legacy).exists():
        status_log.warning("%s, the state file older versions used for this host, is not "
                           "resumed by default any more; to resume it, give --state %s",
                           legacy, shlex.quote(legacy))
    return _crawl(spider, args, default)


def site_state_name(urls: Sequence[str]) -> str:
    """HOST[_PORT]-DIGEST.crawl.db, from the start URLs in canonical form, sorted: the first
    one's host (and port, when not the scheme's default), then 8 hex digits of the SHA-256
    of them all. The same start URLs, in any order and spelling, find the same file; other
    start URLs (another port, scheme, path or one more URL) never do."""
    keys = sorted({parse_absolute(url) for url in urls})
    first = parsed(keys[0])
    name = first.raw_host or "site"
    if first.explicit_port is not None:
        name += f"_{first.explicit_port}"
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9.-]', '_', name)}-{digest}.crawl.db"


def run(args: argparse.Namespace) -> int:
    """`crawl run SPIDER [URL...]`: a user's Spider subclass."""
    spider = make_spider(args.spider, args.urls)
    return _crawl(spider, args, f"{spider.name or 'spider'}.crawl.db")


def make_spider(target: str, urls: Sequence[str]) -> Spider:
    """The user's spider, from `crawl run`'s or `crawl check`'s SPIDER and URLs."""
    cls = load_spider_class(target)
    check_urls(urls)
    try:
        return cls(start_urls=urls or None)
    except Exception as exc:
        raise SpiderError(f"cannot create {cls.__name__}(): {user_error(exc)}") from exc


def check_urls(urls: Sequence[str]) -> None:
    for url in urls:
        try:
            parse_absolute(url)
        except ValueError as exc:
            raise SpiderError(f"bad start URL: {exc}") from None


def _crawl(spider: Spider, args: argparse.Namespace, default_state: str) -> int:
    config = layered(spider, options.settings_from(args))
    if args.progress_every <= 0:
        raise ConfigError("--progress-every must be more than 0 seconds")
    # A crawl in PostgreSQL is named as its SQLite file would be, unless the URL names it.
    state = name_crawl(args.state or default_state, default_state)
    result = running.run(running.run_crawl(spider, config, state, args), args.event_loop)
    _summarise(result, shown(state))
    return _exit_status(result)


def _exit_status(result: CrawlResult) -> int:
    if result.status is CrawlStatus.INTERRUPTED:
        return EXIT_INTERRUPTED
    s = result.stats
    # No page this run, and something failed, or the crawl has never had a page at all. A
    # rerun of a finished crawl (nothing left to do) is not a failure.
    if s.pages == 0 and (s.failed > 0 or result.counts.done == 0):
        if s.failed:
            why = "every request of this run failed"
        elif result.counts.failed:
            why = "every request of the crawl failed (--retry-failed queues them again)"
        else:
            why = "there was nothing to crawl"
        status_log.warning("nothing was fetched: %s", why)
        return EXIT_NOTHING_FETCHED
    return EXIT_OK


def _summarise(result: CrawlResult, state: str) -> None:
    """How the run ended, what it did, what failed, and what to do next."""
    c, s = result.counts, result.stats
    extra = {"event": "summary", "status": result.status.value, "state_file": state,
             "stats": s.to_dict()}
    totals = (f"{c.done:,} done, {c.queued:,} queued, {c.failed:,} failed, "
              f"{c.items:,} items in {state}")
    if result.status is CrawlStatus.INTERRUPTED:
        resume = shlex.join(a for a in ["crawl", *sys.argv[1:]] if a != "--fresh")
        # A warning, not part of the report: the crawl is unfinished, and even --quiet
        # tells how to go on.
        status_log.warning("interrupted after %s (%s).\nresume with: %s",
                           report.duration(s.elapsed), totals, resume,
                           extra={**extra, "resume": resume})
        return
    if result.run.resumed and s.pages == s.failed == 0 \
            and result.status is CrawlStatus.FINISHED:
        report_log.info("nothing to do: this crawl is already complete (%s). Use --fresh to "
                        "start it over.%s", totals, _deeper_hint(c), extra=extra)
        return
    what = "finished" if result.status is CrawlStatus.FINISHED else "stopped at --max-pages"
    lines = [f"{what} in {report.duration(s.elapsed)}: {s.pages:,} pages "
             f"({s.rate:,.1f}/s), {s.items:,} items, {report.size(s.bytes)}, "
             f"{s.failed:,} failed, {s.retried:,} retries",
             f"totals: {totals}"]
    if s.errors:
        lines.append(f"errors this run: {report.counts(s.errors)} "
                     f"(see: crawl stats {shlex.quote(state)})")
    if s.slowest:
        slow = s.slowest[0]
        lines.append(f"slowest host: {slow.host} ({report.duration(slow.avg_seconds)} "
                     f"a response on average)")
    if s.pool is not None:
        lines.append(f"connections: {s.pool.created:,} opened, {s.pool.reused:,} reused; "
                     f"DNS: {s.pool.dns_misses:,} lookups, {s.pool.dns_hits:,} cache hits")
    if result.status is CrawlStatus.PAGE_LIMIT:
        lines.append("to go on, run the same command with a higher --max-pages (or none)")
    if c.parked:
        lines.append(_deeper_hint(c).strip())
    report_log.info("%s", "\n".join(lines), extra=extra)


def _deeper_hint(counts: CrawlCounts) -> str:
    if not counts.parked:
        return ""
    return (f" {counts.parked:,} links beyond --max-depth are kept: rerun with a higher "
            "--max-depth (or none) to crawl them")

