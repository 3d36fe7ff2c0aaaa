"""The `crawl` command line's parser: its commands, their arguments and their help.

The crawl settings' options are made from `CrawlConfig` (crawler/cli/options.py); the
options here are the command line's own (the state file, output, logging, the event loop).
"""

from __future__ import annotations

import argparse

from crawler.cli import fetch, options
from crawler.cli.exits import EPILOG
from crawler.cli.export import FORMATS
from crawler.cli.version import version_text
from crawler.observe import logs

PROGRESS_EVERY = 5.0


def build() -> argparse.ArgumentParser:
    """The whole `crawl` command line: its commands and their options."""
    parser = argparse.ArgumentParser(
        prog="crawl",
        description="A resumable, polite web crawler. The state file IS the crawl: stop it "
        "any time (even kill -9), run the same command again, and it carries on.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _log_options(parser, default=True)
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_site(sub)
    _add_run(sub)
    _add_export(sub)
    _add_stats(sub)
    _add_bench(sub)
    _add_tools(sub)
    return parser


_Commands = argparse._SubParsersAction  # the type argparse gives no public name


def _add_site(sub: _Commands[argparse.ArgumentParser]) -> None:
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


def _add_run(sub: _Commands[argparse.ArgumentParser]) -> None:
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


def _add_export(sub: _Commands[argparse.ArgumentParser]) -> None:
    exp = sub.add_parser("export", help="write a crawl's items as JSON Lines, JSON or CSV",
                         description="Write the items of a state file (also while it runs).")
    exp.add_argument("state", metavar="STATE", help="the crawl's state file")
    exp.add_argument("--format", choices=FORMATS, default="jsonl",
                     help="jsonl (default) or csv (a column per field seen in any item)")
    exp.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    _quiet(exp)


def _add_stats(sub: _Commands[argparse.ArgumentParser]) -> None:
    st = sub.add_parser("stats", help="show a crawl's progress and failures",
                        description="Show what a state file holds; works while it runs.")
    st.add_argument("state", metavar="STATE", help="the crawl's state file")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--failures", type=int, default=10, metavar="N",
                    help="how many recent failures to list (default: 10)")


def _add_bench(sub: _Commands[argparse.ArgumentParser]) -> None:
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
    g.add_argument("-o", "--output", metavar="FILE", action="append", default=[],
                   help="also write the items to FILE as they are committed; repeatable")
    g.add_argument("--json", action="store_true", help="print the figures as JSON")
    g.add_argument("--quiet", action="store_true", help="no live display or progress lines")
    g.add_argument("--progress-every", type=float, default=PROGRESS_EVERY,
                   metavar="SECONDS", help=argparse.SUPPRESS)
    _event_loop_option(g)
    _log_options(g, default=False)


def _add_tools(sub: _Commands[argparse.ArgumentParser]) -> None:
    """The tools a spider is written with: fetch, new and check."""
    fetch.add_parser(sub)
    _quiet(sub.choices["fetch"])
    new = sub.add_parser(
        "new", help="write a spider file to start from",
        description="Write NAME.py in the current folder: a commented spider that crawls "
        "URL's site as it is. An existing file is never written over.")
    new.add_argument("name", metavar="NAME", help="the spider's name (letters, digits, _)")
    new.add_argument("url", metavar="URL", help="its start URL")
    _quiet(new)
    check = sub.add_parser(
        "check", help="say what is wrong with a spider, without crawling",
        description="Load a spider and check it as a crawl would before fetching anything: "
        "its settings, start requests and callbacks. Exit 0 if it would crawl, 2 if not.")
    check.add_argument("spider", metavar="SPIDER",
                       help="path/to/file.py, file.py:ClassName or package.module:ClassName")
    check.add_argument("urls", nargs="*", metavar="URL",
                       help="start URL(s) to use instead of the spider's start_urls")
    _quiet(check)


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="print nothing but problems")
    _log_options(p, default=False)


SITE_STATE = ("HOST[_PORT]-DIGEST.crawl.db in the current folder: the host (and port, if not "
              "the default) of the first start URL in sorted order, and 8 hex digits of the "
              "SHA-256 of all the start URLs, canonical and sorted, so the same start URLs "
              "always find the same file and other ones never do")
RUN_STATE = "NAME.crawl.db in the current folder, NAME being the spider's name"


def _crawl_options(p: argparse.ArgumentParser, default_state: str) -> None:
    g = p.add_argument_group("state")
    g.add_argument("--state", metavar="FILE",
                   help=f"the crawl's state file (default: {default_state}). An unfinished "
                   "one is resumed; one that holds another crawl is refused.")
    g.add_argument("--fresh", action="store_true",
                   help="discard the state file's crawl and start over")
    g.add_argument("--retry-failed", action="store_true",
                   help="put the crawl's failed requests back in the queue (e.g. after a host "
                   "that was down came back)")
    options.add_settings(p.add_argument_group("politeness and limits"))
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
