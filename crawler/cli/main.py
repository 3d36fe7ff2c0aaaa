"""The `crawl` command. The only module that reads argv or the environment."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from yarl import URL

try:
    import uvloop
except ImportError:  # optional: it is not built for Windows or PyPy
    uvloop = None  # type: ignore[assignment]

from crawler.cli import benchmark
from crawler.cli import export as exporter
from crawler.cli import stats as stats_mod
from crawler.config import CrawlConfig, HostPolicy, layered
from crawler.engine.crawler import Crawler, CrawlResult, CrawlStatus
from crawler.errors import ConfigError, CrawlError, SpiderError, StateFileError
from crawler.model.loader import load_spider_class
from crawler.model.spider import Spider
from crawler.observe import display, logs, report
from crawler.urls.canon import parse_absolute
from spiders.site import SiteSpider
from storage import CrawlCounts, RunInfo, Store, StoreError, open_store

T = TypeVar("T")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_FETCHED = 3
EXIT_INTERRUPTED = 130
PROGRESS_EVERY = 5.0

log = logging.getLogger("crawler")
status_log = logging.getLogger(logs.STATUS)
report_log = logging.getLogger(logs.REPORT)

EPILOG = """\
exit status:
  0    the crawl finished (or reached --max-pages)
  1    the crawl failed; the state file is still resumable
  2    usage error: bad arguments, spider not loadable, state file refused
  3    nothing was fetched: every request of the run failed (a host down, refused
       connections, DNS failures, 5xx to the last retry) or there was nothing to
       crawl (a spider without start requests)
  130  interrupted (Ctrl-C); run the same command again to resume
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(args.log_level, args.log_format, quiet=getattr(args, "quiet", False))
    try:
        code: int = args.handler(args)
    except (SpiderError, ConfigError, StateFileError) as exc:
        status_log.error("error: %s", exc)
        return EXIT_USAGE
    except (CrawlError, StoreError) as exc:  # refusals became StateFileError above
        status_log.error("failed: %s\nthe state file is still resumable", exc)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (e.g. `crawl export x.db | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # disk full, permissions, ...: the system's words are the clearest
        status_log.error("error: %s", exc)
        return EXIT_FAILED
    except Exception:
        log.exception("crawl: failed with an unexpected error; the state file is resumable")
        return EXIT_FAILED
    return code


# -- argument parsing -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawl",
        description="A resumable, polite web crawler. The state file IS the crawl: stop it "
        "any time (even kill -9), run the same command again, and it carries on.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _log_options(parser, default=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    site = sub.add_parser(
        "site", help="crawl every HTML page of a site",
        description="Crawl every HTML page on the start URLs' hosts (and their subdomains) "
        "and store one item per page: url, status, title, links.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    site.add_argument("urls", nargs="+", metavar="URL", help="start URL(s)")
    site.add_argument("--sitemaps", action="store_true",
                      help="also read the sitemaps robots.txt lists (else /sitemap.xml)")
    _crawl_options(site, SITE_STATE)
    site.set_defaults(handler=_cmd_site)

    run = sub.add_parser(
        "run", help="run a Spider subclass from a file or module",
        description="Run a user's Spider subclass.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("spider", metavar="SPIDER",
                     help="path/to/file.py, file.py:ClassName or package.module:ClassName")
    run.add_argument("urls", nargs="*", metavar="URL",
                     help="start URL(s) to use instead of the spider's start_urls")
    _crawl_options(run, RUN_STATE)
    run.set_defaults(handler=_cmd_run)

    exp = sub.add_parser("export", help="write a crawl's items as JSON Lines or CSV",
                         description="Write the items of a state file (also while it runs).")
    exp.add_argument("state", metavar="STATE", help="the crawl's state file")
    exp.add_argument("--format", choices=exporter.FORMATS, default="jsonl",
                     help="jsonl (default) or csv (a column per field seen in any item)")
    exp.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    exp.set_defaults(handler=_cmd_export)

    st = sub.add_parser("stats", help="show a crawl's progress and failures",
                        description="Show what a state file holds; works while it runs.")
    st.add_argument("state", metavar="STATE", help="the crawl's state file")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--failures", type=int, default=10, metavar="N",
                    help="how many recent failures to list (default: 10)")
    st.set_defaults(handler=_cmd_stats)

    bench = sub.add_parser(
        "bench", help="measure the crawler on a local benchmark site",
        description="Start a local benchmark site in another process (python -m benchsite), "
        "crawl it with the site spider, robots.txt and the state file on, and print pages/s, "
        "CPU-ms a page, peak RSS and the state file's size. The default site is endless: "
        "every page links to 50 pages never seen before.")
    g = bench.add_argument_group("the site")
    g.add_argument("--site-pages", type=int, default=0, metavar="N",
                   help="a finite site of N pages whose links repeat (default: 0, endless)")
    g.add_argument("--links", type=int, default=50, metavar="N",
                   help="links a page (default: 50)")
    g.add_argument("--page-size", type=int, default=0, metavar="BYTES",
                   help="pad pages to about this size (default: no padding)")
    g.add_argument("--url", metavar="URL",
                   help="crawl this already running site instead of starting one")
    g = bench.add_argument_group("the crawl")
    g.add_argument("--pages", type=int, default=10_000, metavar="N",
                   help="requests to make (default: 10,000)")
    g.add_argument("--workers", type=int, default=32, metavar="N",
                   help="requests in flight (default: 32)")
    g.add_argument("--per-host", type=int, default=32, metavar="N",
                   help="requests in flight to the site (default: 32)")
    g.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                   help="between request starts (default: 0)")
    g.add_argument("--ignore-robots", dest="obey_robots", action="store_false",
                   help="do not fetch or obey robots.txt")
    g.add_argument("--state", metavar="FILE",
                   help="keep the state file here (default: a temporary file, deleted)")
    g.add_argument("--json", action="store_true", help="print the figures as JSON")
    g.add_argument("--quiet", action="store_true", help="no live display or progress lines")
    g.add_argument("--progress-every", type=float, default=PROGRESS_EVERY,
                   metavar="SECONDS", help=argparse.SUPPRESS)
    _event_loop_option(g)
    _log_options(g, default=False)
    bench.set_defaults(handler=_cmd_bench)
    return parser


SITE_STATE = ("HOST[_PORT]-DIGEST.crawl.db in the current folder: the host (and port, if not "
              "the default) of the first start URL in sorted order, and 8 hex digits of the "
              "SHA-256 of all the start URLs, canonical and sorted, so the same start URLs "
              "always find the same file and other ones never do")
RUN_STATE = "NAME.crawl.db in the current folder, NAME being the spider's name"


def _crawl_options(p: argparse.ArgumentParser, default_state: str) -> None:
    d = CrawlConfig()
    g = p.add_argument_group("state")
    g.add_argument("--state", metavar="FILE",
                   help=f"the crawl's state file (default: {default_state}). An unfinished "
                   "one is resumed; one that holds another crawl is refused.")
    g.add_argument("--fresh", action="store_true",
                   help="discard the state file's crawl and start over")
    g.add_argument("--retry-failed", action="store_true",
                   help="put the crawl's failed requests back in the queue (e.g. after a host "
                   "that was down came back)")
    g = p.add_argument_group("politeness and limits")
    g.add_argument("--workers", type=int, metavar="N",
                   help=f"requests in flight over all hosts (default: {d.workers})")
    g.add_argument("--per-host", type=int, metavar="N",
                   help=f"requests in flight to one host (default: {d.per_host})")
    g.add_argument("--delay", type=float, metavar="SECONDS",
                   help=f"between request starts to one host (default: {d.delay})")
    g.add_argument("--max-pages", type=int, metavar="N",
                   help="stop after N requests in total (resumable: raise it and rerun)")
    g.add_argument("--max-depth", type=int, metavar="N",
                   help="follow links at most N hops from the start URLs")
    g.add_argument("--timeout", type=float, metavar="SECONDS",
                   help=f"for a whole request (default: {d.timeout})")
    g.add_argument("--max-retries", type=int, metavar="N",
                   help=f"retries of a retryable failure (default: {d.max_retries})")
    g.add_argument("--user-agent", metavar="TEXT", help="the User-Agent header to send")
    g.add_argument("--max-links", type=int, metavar="N",
                   help=f"links one page may add (default: {d.max_links:,}; a URL counts once "
                   "more per 256 characters); the rest are counted as skipped")
    g.add_argument("--include", action="append", metavar="REGEX",
                   help="follow only URLs matching a pattern; repeatable")
    g.add_argument("--exclude", action="append", metavar="REGEX",
                   help="do not follow URLs matching a pattern; repeatable")
    g.add_argument("--strip-tracking", action="store_const", const=True,
                   help="drop tracking query parameters (utm_*, fbclid, gclid, ...)")
    g.add_argument("--sort-query", action="store_const", const=True,
                   help="sort query parameters so reordered queries are one page")
    g.add_argument("--host-per-host", action="append", default=[], metavar="HOST=N",
                   help="requests in flight to HOST (and its subdomains); repeatable")
    g.add_argument("--host-delay", action="append", default=[], metavar="HOST=SECONDS",
                   help="delay for HOST (and its subdomains); repeatable")
    g.add_argument("--max-crawl-delay", type=float, metavar="SECONDS",
                   help=f"obey a robots.txt Crawl-delay up to this (default: "
                   f"{d.max_crawl_delay:g})")
    g.add_argument("--ignore-robots", dest="obey_robots", action="store_const", const=False,
                   help="do not fetch or obey robots.txt (only for sites you may crawl freely)")
    g.add_argument("--allow-private", action="store_const", const=True,
                   help="let a crawl of public sites connect to private network addresses "
                   "(loopback, RFC 1918, link-local, ...); a crawl whose start URL is private "
                   "allows them anyway")
    g.add_argument("--resolve", action="append", default=[], metavar="HOST:ADDRESS",
                   help="answer DNS for HOST with ADDRESS (like curl --resolve; HOST may be "
                   "*.domain for all its subdomains); repeatable")
    g = p.add_argument_group("output")
    g.add_argument("--quiet", action="store_true",
                   help="no live display, no progress lines, no summary (warnings and errors "
                   "still show)")
    g.add_argument("--progress-every", type=float, default=PROGRESS_EVERY, metavar="SECONDS",
                   help="when stderr is not a terminal, log a progress line this often "
                   f"(default: {PROGRESS_EVERY:g}); on a terminal a live display shows instead")
    _event_loop_option(g)
    _log_options(g, default=False)  # also accepted after the command


def _event_loop_option(group: argparse._ActionsContainer) -> None:
    group.add_argument("--event-loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                       help="auto (default): uvloop when it is installed, else asyncio's own")


def _log_options(group: argparse._ActionsContainer, *, default: bool) -> None:
    group.add_argument("--log-level", default="WARNING" if default else argparse.SUPPRESS,
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                       help="how much to log to stderr (default: WARNING; progress and the "
                       "summary show regardless, unless --quiet)")
    group.add_argument("--log-format", default="text" if default else argparse.SUPPRESS,
                       choices=logs.FORMATS,
                       help="text (default) or json: one JSON object a line, for log "
                       "collectors; progress lines carry the figures as fields")


def _command_line_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("workers", "per_host", "delay", "max_pages", "max_depth", "timeout",
                     "max_retries", "user_agent", "obey_robots", "strip_tracking",
                     "sort_query", "max_crawl_delay", "allow_private", "max_links")
    }
    for name in ("include", "exclude"):
        if getattr(args, name):
            settings[name] = tuple(getattr(args, name))
    if args.resolve:
        settings["resolve"] = dict(_parse_resolve(item) for item in args.resolve)
    if args.host_per_host or args.host_delay:
        settings["host_policies"] = _host_policies(args.host_per_host, args.host_delay)
    return settings


def _host_policies(per_host: Sequence[str], delay: Sequence[str]) -> dict[str, HostPolicy]:
    caps = {host: int(_number(value, f"--host-per-host {host}"))
            for host, value in map(_host_value, per_host)}
    delays = {host: _number(value, f"--host-delay {host}")
              for host, value in map(_host_value, delay)}
    return {host: HostPolicy(per_host=caps.get(host), delay=delays.get(host))
            for host in {*caps, *delays}}


def _host_value(item: str) -> tuple[str, str]:
    host, sep, value = item.partition("=")
    if not sep or not host or not value:
        raise ConfigError(f"expected HOST=VALUE, not {item!r}")
    return host.strip().lower(), value


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None
    if what.startswith("--host-per-host") and not value.is_integer():
        raise ConfigError(f"{what}: {text!r} is not a whole number")
    return value


def _parse_resolve(item: str) -> tuple[str, str]:
    host, sep, addr = item.partition(":")  # an IPv6 address keeps its colons: h.test:::1
    if not sep or not host or not addr:
        raise ConfigError(f"--resolve takes HOST:ADDRESS, not {item!r}")
    return host, addr


# -- crawl commands -------------------------------------------------------------------------


def _cmd_site(args: argparse.Namespace) -> int:
    _check_urls(args.urls)
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
    keys = sorted({str(parse_absolute(url)) for url in urls})
    first = URL(keys[0], encoded=True)
    name = first.raw_host or "site"
    if first.explicit_port is not None:
        name += f"_{first.explicit_port}"
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9.-]', '_', name)}-{digest}.crawl.db"


def _cmd_run(args: argparse.Namespace) -> int:
    cls = load_spider_class(args.spider)
    _check_urls(args.urls)
    try:
        spider = cls(start_urls=args.urls or None)
    except Exception as exc:
        raise SpiderError(f"cannot create {cls.__name__}(): {type(exc).__name__}: {exc}") \
            from exc
    return _crawl(spider, args, f"{spider.name or 'spider'}.crawl.db")


def _check_urls(urls: Sequence[str]) -> None:
    for url in urls:
        try:
            parse_absolute(url)
        except ValueError as exc:
            raise SpiderError(f"bad start URL: {exc}") from None


def _crawl(spider: Spider, args: argparse.Namespace, default_state: str) -> int:
    config = layered(spider, _command_line_settings(args))
    if args.progress_every <= 0:
        raise ConfigError("--progress-every must be more than 0 seconds")
    state = args.state or default_state
    result = _run(_run_crawl(spider, config, state, args), args.event_loop)
    _summarise(result, state)
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


async def _run_crawl(spider: Spider, config: CrawlConfig, state: str,
                     args: argparse.Namespace) -> CrawlResult:
    store = await _open(state)
    try:
        crawler = Crawler(spider, store, config, fresh=args.fresh,
                          retry_failed=args.retry_failed,
                          on_start=lambda info: _announce(info, spider.name, state))
        _install_signal_handlers(crawler)
        reporter = _reporter(crawler, args)
        try:
            return await crawler.run()
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
    finally:
        await store.close()


def _reporter(crawler: Crawler, args: argparse.Namespace) -> asyncio.Task[None] | None:
    """The live display on a terminal; progress log lines anywhere else."""
    if args.quiet:
        return None
    console = Console(stderr=True)
    if console.is_terminal and args.log_format == "text":
        return asyncio.create_task(display.live(
            lambda: crawler.snapshot(process_sockets=True), console))
    return asyncio.create_task(display.log_lines(crawler.snapshot, args.progress_every))


def _install_signal_handlers(crawler: Crawler) -> None:
    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            # Everything committed is safe and the rest is refetched: exit at once.
            status_log.warning("stopped at once; the crawl is still resumable")
            if os.isatty(2):
                os.write(2, b"\x1b[?25h")  # the live display hid the cursor
            os._exit(EXIT_INTERRUPTED)
        status_log.info("stopping (finishing requests in flight; Ctrl-C again to quit "
                        "at once)")
        crawler.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def _announce(info: RunInfo, name: str, state: str) -> None:
    c = info.counts
    if not info.resumed:
        status_log.info("new crawl '%s' in %s", name, state,
                        extra={"event": "start", "state_file": state})
        return
    reclaimed = (f" ({info.reclaimed:,} unfinished requests of a stopped run put back in the "
                 "queue)" if info.reclaimed else "")
    status_log.info("resuming '%s' from %s: %s done, %s queued, %s failed%s", name, state,
                    f"{c.done:,}", f"{c.queued:,}", f"{c.failed:,}", reclaimed,
                    extra={"event": "resume", "state_file": state, "done": c.done,
                           "queued": c.queued, "failed": c.failed,
                           "reclaimed": info.reclaimed})


def _summarise(result: CrawlResult, state: str) -> None:
    """How the run ended, what it did, what failed, and what to do next."""
    c, s = result.counts, result.stats
    extra = {"event": "summary", "status": result.status.value, "state_file": state,
             "stats": s.to_dict()}
    totals = (f"{c.done:,} done, {c.queued:,} queued, {c.failed:,} failed, "
              f"{c.items:,} items in {state}")
    if result.status is CrawlStatus.INTERRUPTED:
        resume = shlex.join(a for a in ["crawl", *sys.argv[1:]] if a != "--fresh")
        # Not part of the report: even --quiet tells how to go on.
        status_log.info("interrupted after %s (%s).\nresume with: %s",
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


def _loop_factory(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """uvloop's libuv loop when asked or when installed: the same code, less CPU a request."""
    if choice == "asyncio":
        return None, "asyncio"
    if uvloop is None:
        if choice == "uvloop":
            raise ConfigError("--event-loop uvloop: uvloop is not installed "
                              "(pip install uvloop)")
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def _run(coro: Coroutine[Any, Any, T], event_loop: str) -> T:
    factory, _ = _loop_factory(event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.pages < 1 or args.links < 1 or args.site_pages < 0 or args.page_size < 0:
        raise ConfigError("--pages and --links must be at least 1; --site-pages and "
                          "--page-size at least 0")
    config = CrawlConfig(workers=args.workers, per_host=args.per_host, delay=args.delay,
                         max_pages=args.pages, obey_robots=args.obey_robots)
    if args.state and Path(args.state).exists() and Path(args.state).stat().st_size:
        raise ConfigError(f"--state {args.state}: the file exists; crawl bench starts a new "
                          "crawl, so give it a file that does not")
    args.fresh, args.retry_failed = True, False
    with tempfile.TemporaryDirectory(prefix="crawl-bench-") as tmp:
        state = Path(args.state or Path(tmp) / "bench.crawl.db")
        figures = _run(_bench(config, state, args), args.event_loop)
    if args.json:
        print(json.dumps(figures.to_dict(), indent=2))
    else:
        print(figures.report())
    return EXIT_OK


async def _bench(config: CrawlConfig, state: Path,
                 args: argparse.Namespace) -> benchmark.BenchResult:
    _, loop_name = _loop_factory(args.event_loop)
    site_options = ["--pages", str(args.site_pages), "--links", str(args.links),
                    "--size", str(args.page_size)]
    async with contextlib.AsyncExitStack() as stack:
        url = args.url or await stack.enter_async_context(benchmark.benchmark_site(site_options))
        _check_urls([url])
        what = (f"a finite site of {args.site_pages:,} pages" if args.site_pages
                else "an endless site") if not args.url else url
        report_log.info("bench: %s, %d links a page; %d workers, per-host %d, delay %g, "
                        "robots.txt %s, state file on", what, args.links, config.workers,
                        config.per_host, config.delay, "on" if config.obey_robots else "off")
        spider = SiteSpider([url.rstrip("/") + "/"])
        figures, _ = await benchmark.measure(
            lambda: _run_crawl(spider, config, str(state), args), state, loop_name)
        return figures


# -- reading commands -----------------------------------------------------------------------


def _cmd_export(args: argparse.Namespace) -> int:
    return _run(_export(args), "asyncio")


async def _export(args: argparse.Namespace) -> int:
    store = await _open(args.state, readonly=True)
    try:
        if args.output is None:
            n = await exporter.export(store, args.format, sys.stdout)
        else:
            n = await _export_to_file(store, args.format, Path(args.output))
    finally:
        await store.close()
    status_log.info("exported %s items", f"{n:,}", extra={"event": "export", "items": n})
    return EXIT_OK


async def _export_to_file(store: Store, fmt: str, path: Path) -> int:
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: the folder {path.parent} does not exist")
    # Written aside and renamed: an export cut short never leaves a half file in place. The
    # partial file has one name, truncated on open: the export that follows a killed one
    # writes over its leftover instead of adding another.
    tmp = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o666)
    except OSError as exc:  # a read-only folder, no permission: say so of the output
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another export is writing {path} (its partial file {tmp} is "
                              "in use); wait for it to finish") from None
        if not _still_named(fd, tmp):
            # Opened just before another export renamed it into place: that is its output.
            raise ConfigError(f"another export has just written {path}; run this one again "
                              "to write it anew")
        os.ftruncate(fd, 0)  # only now: truncating before the lock would cut another's file
        try:
            n = await exporter.export(store, fmt, out)
            out.flush()
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return n


def _still_named(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the one at `path`."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)


def _cmd_stats(args: argparse.Namespace) -> int:
    return _run(_stats(args), "asyncio")


async def _stats(args: argparse.Namespace) -> int:
    store = await _open(args.state, readonly=True)
    try:
        data = await stats_mod.gather(store, failures=args.failures)
    finally:
        await store.close()
    data["state_file"] = args.state
    data["read_at"] = time.time()
    if args.json:
        print(stats_mod.render_json(data))
    else:
        stats_mod.render_text(data, sys.stdout)
    return EXIT_OK


async def _open(path: str, *, readonly: bool = False) -> Store:
    """Open a state file; a refusal becomes the error the user sees (exit 2)."""
    try:
        return await open_store(path, readonly=readonly)
    except StoreError as exc:
        raise StateFileError(str(exc)) from exc


if __name__ == "__main__":
    sys.exit(main())
