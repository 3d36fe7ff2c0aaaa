"""`crawl fetch URL [--css SEL]`: what a spider would see of one page, fetched the way a
crawl of that URL fetches it: the same Fetcher and settings, the start URL's scope, the
private-address rule, robots.txt (each hop's origin's), and redirects followed one hop at a
time within those rules. One attempt: no retries, no state file."""

from __future__ import annotations

import argparse
import enum
import json
import time
from dataclasses import dataclass, field
from typing import Any

from selectolax.lexbor import LexborHTMLParser, SelectolaxError
from yarl import URL

from crawler.cli import options, running
from crawler.cli.crawl import check_urls
from crawler.config import CrawlConfig
from crawler.engine.fetch import MeteredFetch
from crawler.engine.loopwatch import LoopWatch
from crawler.engine.opening import allow_private_if_started_there
from crawler.engine.robotstxt import fetch_robots
from crawler.errors import (
    ConfigError,
    FailureKind,
    FetchError,
    OutOfScope,
    PrivateAddress,
    message,
)
from crawler.http.fetcher import Fetcher
from crawler.http.transport import FetchResult
from crawler.model.response import Response
from crawler.observe.logs import terminal_safe
from crawler.observe.metrics import Metrics
from crawler.policy import robots
from crawler.urls import canon
from crawler.urls.canon import CanonicalURL
from crawler.urls.origin import Origin, origin_of
from crawler.urls.scope import Scope

SETTINGS = ("timeout", "user_agent", "obey_robots", "allow_private", "resolve", "cookies",
            "headers", "proxy")
"""The crawl settings that bear on one fetch: `crawl fetch` takes their options."""


class FetchEnd(enum.IntEnum):
    """How `crawl fetch` ended: its exit status."""

    PAGE = 0  # a 2xx answer: what a spider's callback is given
    FAILED = 1  # no answer: connection, DNS, timeout, TLS, too large, too many redirects
    USAGE = 2  # bad arguments (main.py's usage errors)
    ROBOTS = 4  # robots.txt disallows it, or could not be had (a crawl would wait)
    REFUSED = 5  # outside the crawl's rules: a redirect off its hosts, a private address
    STATUS = 6  # an answer that is not 2xx (shown; a callback would not get it)


EPILOG = """\
exit status:
  0    a 2xx answer (what a spider's callback gets)
  1    no answer: the fetch failed (connection, DNS, timeout, TLS, too large, too many
       redirects)
  2    usage error: bad arguments or settings
  4    robots.txt disallows the URL (or a redirect's), or could not be fetched
  5    refused by the crawl's rules: a redirect off the start URL's hosts and ports, or a
       private address for a public URL (--allow-private allows those)
  6    an answer that is not 2xx (shown: a spider's callback would not get it)
"""


@dataclass
class Probe:
    """What fetching one URL the crawl's way came to."""

    end: FetchEnd = FetchEnd.FAILED
    redirects: list[tuple[int, str, str]] = field(default_factory=list)  # status, from, to
    result: FetchResult | None = None
    key: CanonicalURL | None = None  # the last URL asked for
    why: str = ""  # what stopped it, when it did not end in an answer


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "fetch", help="show what a spider would see of one URL",
        description="Fetch one URL as a crawl starting there would (its settings, scope, "
        "robots.txt and private-address rule, redirects followed within them; one attempt) "
        "and print the final URL, status, headers, decoded charset, title, and the text of "
        "the nodes --css selects.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", metavar="URL", help="the URL to fetch")
    p.add_argument("--css", action="append", default=[], metavar="SELECTOR",
                   help="print the text of the nodes this CSS selector matches; repeatable")
    p.add_argument("--json", action="store_true", help="print it all as one JSON object")
    options.add_settings(p.add_argument_group("as in a crawl"), only=SETTINGS)


def command(args: argparse.Namespace) -> int:
    check_urls([args.url])
    check_selectors(args.css)
    config = CrawlConfig().with_overrides(options.settings_from(args, only=SETTINGS))
    key = canon.parse_absolute(args.url)
    probe = running.run(fetch_like_a_crawl(key, config), "asyncio")
    response = None
    if probe.result is not None and probe.key is not None:
        r = probe.result
        response = Response(r.url, r.status, r.headers, r.body, key=probe.key)
    report = describe(probe, response, args.css)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(as_text(report))
    return int(probe.end)


def check_selectors(selectors: list[str]) -> None:
    """A selector lexbor cannot parse is a usage error, found before anything is fetched."""
    empty = LexborHTMLParser("")
    for selector in selectors:
        try:
            empty.css(selector)
        except SelectolaxError:
            raise ConfigError(f"--css {selector!r} is not a CSS selector") from None


async def fetch_like_a_crawl(key: CanonicalURL, config: CrawlConfig) -> Probe:
    """Fetch `key` hop by hop, as a crawl started there would, robots.txt first."""
    start = canon.parsed(key)
    scope = Scope.of_urls([start])
    probe = Probe(key=key)
    policies: dict[Origin, robots.Robots] = {}
    async with Fetcher(config) as fetcher:
        fetcher.auth_for([start])
        await allow_private_if_started_there(fetcher, [start])
        fetch = MeteredFetch(fetcher, scope, Metrics(), LoopWatch(time.monotonic),
                             time.monotonic)
        while True:
            assert probe.key is not None
            url = canon.parsed(probe.key)
            if config.obey_robots and not await _robots_allow(
                    fetch, probe, url, scope, policies=policies, user_agent=config.user_agent):
                return probe
            try:
                result = await fetch.fetch(url)
            except (OutOfScope, PrivateAddress) as exc:
                return _stopped(probe, FetchEnd.REFUSED, message(exc))
            except FetchError as exc:
                return _stopped(probe, FetchEnd.FAILED, message(exc))
            probe.result = result
            if result.location is None:
                probe.end = FetchEnd.PAGE if 200 <= result.status < 300 else FetchEnd.STATUS
                return probe
            if not _follow(probe, result, url, scope, config.max_redirects):
                return probe


def _follow(probe: Probe, result: FetchResult, url: URL, scope: Scope,
            max_redirects: int) -> bool:
    """Take a redirect as the crawl does (a new request, the same rules); False if not."""
    assert result.location is not None
    target = canon.join(url, result.location)
    if target is None:
        _stopped(probe, FetchEnd.STATUS, f"redirect to {result.location!r}, which cannot be "
                 "crawled: not followed")
        return False
    if len(probe.redirects) >= max_redirects:
        _stopped(probe, FetchEnd.FAILED, f"more than {max_redirects} redirects (last to "
                 f"{target})")
        return False
    probe.redirects.append((result.status, str(probe.key), target))
    if not scope.allows_url(canon.parsed(target)):
        _stopped(probe, FetchEnd.REFUSED, f"redirect to {target}, outside the crawl's hosts "
                 "and ports: a crawl would not follow it")
        return False
    probe.key, probe.result = target, None
    return True


async def _robots_allow(fetch: MeteredFetch, probe: Probe, url: URL, scope: Scope, *,
                        policies: dict[Origin, robots.Robots], user_agent: str) -> bool:
    assert probe.key is not None
    site = origin_of(probe.key)
    assert site is not None  # a canonical URL always has one
    policy = policies.get(site)
    if policy is None:
        policy = policies[site] = await fetch_robots(fetch, robots.robots_url(url), scope,
                                                     time.monotonic)
    if policy.allows(probe.key, user_agent):
        return True
    if policy.kind in _REFUSALS:  # not asked: the page itself would be refused the same
        _stopped(probe, FetchEnd.REFUSED, policy.reason)
    elif policy.kind is not FailureKind.ROBOTS:  # the host did not answer: nor would the page
        _stopped(probe, FetchEnd.FAILED, policy.reason)
    elif policy.state is robots.RobotsState.UNREACHABLE:
        _stopped(probe, FetchEnd.ROBOTS, f"{policy.reason}: a crawl waits and asks again; "
                 "--ignore-robots fetches the page anyway")
    else:
        _stopped(probe, FetchEnd.ROBOTS, f"robots.txt of {site} disallows {probe.key} for "
                 f"{user_agent!r} (--ignore-robots fetches it anyway)")
    return False


_REFUSALS = frozenset({FailureKind.OFFSITE, FailureKind.PRIVATE_ADDRESS})


def _stopped(probe: Probe, end: FetchEnd, why: str) -> Probe:
    probe.end, probe.why = end, why
    return probe


def describe(probe: Probe, response: Response | None, selectors: list[str]) -> dict[str, Any]:
    """What `crawl fetch` prints, as data (`--json` prints this very dict)."""
    report: dict[str, Any] = {"url": probe.key, "exit": int(probe.end)}
    if probe.why:
        report["stopped"] = probe.why
    if probe.redirects:
        report["redirects"] = [{"status": s, "from": a, "to": b} for s, a, b in probe.redirects]
    if response is None:
        return report
    report.update(status=response.status, headers=[[k, v] for k, v in response.headers.items()],
                  content_type=response.content_type, charset=response.encoding,
                  bytes=len(response.body), title=response.title)
    if selectors:
        report["css"] = {sel: [_text(node.text(deep=True)) for node in response.css(sel)]
                         for sel in selectors}
    return report


def _text(text: str) -> str:
    return " ".join(text.split())


def as_text(report: dict[str, Any]) -> str:
    lines = [f"url       {report['url']}"]
    lines += [f"redirect  {r['status']} {r['from']} -> {r['to']}"
              for r in report.get("redirects", ())]
    if "status" in report:
        lines += [f"status    {report['status']}",
                  f"type      {report['content_type'] or '-'} ({report['bytes']:,} bytes)",
                  f"charset   {report['charset']}",
                  f"title     {report['title'] if report['title'] is not None else '-'}",
                  "headers"]
        lines += [f"  {name}: {value}" for name, value in report["headers"]]
    if "stopped" in report:
        lines.append(f"stopped   {report['stopped']}")
    for selector, texts in report.get("css", {}).items():
        lines.append(f"css {selector!r}: {len(texts)} match{'es' if len(texts) != 1 else ''}")
        lines += [f"  {text}" for text in texts]
    # The page's title, headers and text are the site's: none of its escape sequences
    # (a title that rewrites the terminal's, OSC 52 writing the clipboard) may run here.
    return terminal_safe("\n".join(lines))
