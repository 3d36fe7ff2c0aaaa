"""The crawl's settings: one frozen dataclass. Precedence: defaults < spider < command line."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crawler import settings
from crawler.config.values import (
    DEFAULT_USER_AGENT,
    MAX_LINKS,
    OUTPUT_FORMATS,
    REDACTED,
    HostPolicy,
    check_auth,
    check_header_value,
    check_headers,
    check_host_keys,
    check_output_format,
    check_outputs,
    check_patterns,
    check_proxy,
    check_user_agent,
    headers_from_text,
    host_policies_from_text,
    redact_url,
    resolve_from_text,
)
from crawler.errors import ConfigError
from crawler.settings import Option, setting

__all__ = ["DEFAULT_USER_AGENT", "MAX_LINKS", "OUTPUT_FORMATS", "REDACTED", "SPIDER_SETTINGS",
           "CrawlConfig", "HostPolicy", "check_header_value", "host_policies_from_text",
           "layered", "redact_url"]

_status = logging.getLogger("crawler.status")  # shown even with --quiet


@dataclass(frozen=True, slots=True)
class CrawlConfig:
    """How a crawl behaves. Defaults are polite to sites you do not own.

    Each field says in its `setting(...)` what it is, its bounds, whether a spider may set
    it and its command-line option: validation, spider attributes, the command line and the
    crawl's identity all follow from these declarations (crawler/settings.py)."""

    workers: int = setting(16, low=1, spider=True, shown=True, cli=Option("--workers", "N"),
                           help="requests in flight over all hosts")
    per_host: int = setting(2, low=1, spider=True, shown=True, cli=Option("--per-host", "N"),
                            help="requests in flight to one host")
    delay: float = setting(0.5, low=0, spider=True, shown=True,
                           cli=Option("--delay", "SECONDS"),
                           help="seconds between request starts to one host")
    max_pages: int | None = setting(
        None, low=0, spider=True, shown=True, cli=Option("--max-pages", "N"),
        help="stop after this many requests in total, over all runs (resumable: raise it "
        "and rerun)")
    max_depth: int | None = setting(
        None, low=0, spider=True, shown=True, defines_crawl=True,
        cli=Option("--max-depth", "N"),
        help="follow links at most this many hops from the start URLs")
    timeout: float = setting(30.0, low=1e-3, spider=True, shown=True,
                             cli=Option("--timeout", "SECONDS"),
                             help="seconds for a whole request, body included")
    connect_timeout: float = setting(10.0, low=1e-3, help="seconds to open a connection")
    read_timeout: float = setting(20.0, low=1e-3,
                                  help="seconds to wait for the next chunk of a response")
    max_retries: int = setting(3, low=0, spider=True, shown=True,
                               cli=Option("--max-retries", "N"),
                               help="retries of a retryable failure, with jittered "
                               "exponential backoff")
    retry_backoff: float = setting(
        2.0, low=0, help="seconds before the first retry; doubles each time, with jitter")
    user_agent: str = setting(DEFAULT_USER_AGENT, spider=True, shown=True, check=check_user_agent,
                              cli=Option("--user-agent", "TEXT"),
                              help="the User-Agent header to send; robots.txt groups match it")
    max_body: int = setting(16 * 1024 * 1024, low=1, spider=True,
                            help="bytes of (decompressed) body kept; a larger response fails "
                            "as too large")
    max_redirects: int = setting(10, low=1, spider=True,
                                 help="redirect hops followed from one request")
    max_links: int = setting(
        MAX_LINKS, low=0, spider=True, cli=Option("--max-links", "N"),
        help="links one page may add (a URL counts once more per 256 characters); the rest "
        "are counted as skipped_link_limit")
    include: tuple[str, ...] = setting(
        (), spider=True, defines_crawl=True, check=check_patterns,
        cli=Option("--include", "REGEX", repeat=True),
        help="follow only URLs matching one of these regular expressions")
    exclude: tuple[str, ...] = setting(
        (), spider=True, defines_crawl=True, check=check_patterns,
        cli=Option("--exclude", "REGEX", repeat=True),
        help="do not follow URLs matching any of these regular expressions")
    strip_tracking: bool = setting(
        False, spider=True, defines_crawl=True, cli=Option("--strip-tracking"),
        help="drop tracking query parameters (utm_*, fbclid, gclid, ...) from URLs")
    sort_query: bool = setting(
        False, spider=True, defines_crawl=True, cli=Option("--sort-query"),
        help="sort query parameters so reordered queries are one page")
    host_policies: Mapping[str, HostPolicy] = setting(
        {}, spider=True, parse=host_policies_from_text, check=check_host_keys,
        cli=(Option("--host-per-host", "HOST=N", repeat=True,
                    help="requests in flight to HOST (and its subdomains)"),
             Option("--host-delay", "HOST=SECONDS", repeat=True,
                    help="delay for HOST (and its subdomains)")),
        help="per-host or per-domain concurrency and delay (for the host and its "
        'subdomains), e.g. {"example.org": HostPolicy(per_host=1, delay=5)}')
    max_crawl_delay: float = setting(30.0, low=0, spider=True,
                                     cli=Option("--max-crawl-delay", "SECONDS"),
                                     help="obey a robots.txt Crawl-delay up to this many "
                                     "seconds")
    obey_robots: bool = setting(
        True, spider=True, shown=True, defines_crawl=True,
        cli=Option("--ignore-robots", value=False, help="do not fetch or obey robots.txt "
                   "(only for sites you may crawl freely)"),
        help="fetch and obey each host's robots.txt (RFC 9309) before crawling it")
    allow_private: bool = setting(
        False, spider=True, defines_crawl=True, cli=Option("--allow-private"),
        help="let a crawl of public sites connect to private network addresses (loopback, "
        "RFC 1918, link-local, ...); a crawl whose start URL is private allows them anyway")
    resolve: Mapping[str, str] = setting(
        {}, parse=resolve_from_text,
        cli=Option("--resolve", "HOST:ADDRESS", repeat=True,
                   help="answer DNS for HOST with ADDRESS (like curl --resolve; HOST may be "
                   "*.domain for all its subdomains)"),
        help="static host -> address answers, like curl's --resolve")
    cookies: bool = setting(
        True, spider=True, cli=Option("--no-cookies", value=False,
                                      help="keep no cookies: send none, store none"),
        help="keep the cookies sites set, for the whole crawl (a session: a resumed crawl is "
        "still logged in); False sends none")
    headers: Mapping[str, str] = setting(
        {}, spider=True, parse=headers_from_text, check=check_headers,
        cli=Option("--header", "'NAME: VALUE'", repeat=True,
                   help="a header sent with every request (added to the spider's headers; "
                   "a name given again replaces its value)"),
        help='headers sent with every request, e.g. {"Accept-Language": "en"}')
    auth: Mapping[str, tuple[str, ...]] = setting(
        {}, spider=True, check=check_auth,
        help='HTTP basic auth per host, e.g. {"api.example": ("user", "password")}, or per '
        'origin ("https://api.example:8443"): sent to that host only (not its subdomains, '
        "not after a redirect elsewhere); never stored or logged")
    proxy: str | None = setting(
        None, spider=True, check=check_proxy, cli=Option("--proxy", "URL"),
        help="send every request through this HTTP or HTTPS proxy "
        "(http://[USER:PASSWORD@]HOST[:PORT]); politeness stays per target host")
    dns_ttl: float = setting(300.0, low=0,
                             help="seconds a DNS answer is cached by the connection pool")
    keepalive_timeout: float = setting(30.0, low=0,
                                       help="seconds an idle keep-alive connection is kept")
    output: tuple[str, ...] = setting(
        (), spider=True, check=check_outputs,
        cli=Option("--output", "FILE", repeat=True, short="-o",
                   help="write the items to FILE as they are committed, each once, in "
                   "commit order, across kill -9 and resume (format from the extension: "
                   ".jsonl, .json, .csv; - for stdout)"),
        help="files the items are written to as they are committed (.jsonl, .json or .csv; "
        '"-" for stdout), e.g. ["items.jsonl"]: each item once, in commit order, even across '
        "kill -9 and resume")
    output_format: str | None = setting(
        None, spider=True, check=check_output_format,
        cli=Option("--output-format", "FORMAT"),
        help="the format of every output, instead of its extension's: jsonl, json or csv")
    send_log: str | None = setting(
        None, cli=Option("--send-log", "FILE"),
        help="append a line to FILE as each request goes out (monotonic seconds, host, "
        "pid): politeness seen from the crawler's side, e.g. for bench/processes.py; "
        "processes may share one file")
    dead_after: int = setting(
        5, low=1, help="consecutive connection failures after which a host is down for the "
        "rest of the run: its queued requests fail at once (--retry-failed queues them again "
        "later)")

    def __post_init__(self) -> None:
        settings.validate(self)
        if any(host != host.lower() for host in self.host_policies):
            # Hosts are matched as URLs hold them, in lower case (as --host-delay reads them)
            object.__setattr__(self, "host_policies",
                               {host.lower(): p for host, p in self.host_policies.items()})

    def policy_for(self, host: str) -> HostPolicy | None:
        """The policy for a host: its own, else its closest parent domain's."""
        while True:
            policy = self.host_policies.get(host)
            if policy is not None:
                return policy
            dot = host.find(".")
            if dot == -1:
                return None
            host = host[dot + 1 :]

    def with_overrides(self, overrides: Mapping[str, Any]) -> CrawlConfig:
        """A copy with the given fields replaced; None means "not set" and is ignored."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **values)

    def __repr__(self) -> str:  # a config in a traceback or a log shows no credentials
        return f"CrawlConfig({self.to_json()})"

    def to_json(self) -> str:
        """The settings as the state file keeps them: credentials left out (auth, a proxy's
        password, Authorization and Cookie headers), since the file outlives the run."""
        data = dataclasses.asdict(self)
        data["auth"] = {host: REDACTED for host in self.auth}
        data["proxy"] = None if self.proxy is None else redact_url(self.proxy)
        # Every value: an X-Api-Key or a token under any name is a credential too.
        data["headers"] = dict.fromkeys(self.headers, REDACTED)
        return json.dumps(data, sort_keys=True, default=dict)


CrawlConfig.__doc__ = f"{CrawlConfig.__doc__}\n\n{settings.describe(CrawlConfig)}\n"

SPIDER_SETTINGS = settings.names(CrawlConfig, spider=True)
"""Settings a spider may set as class attributes of the same name."""
_SPIDER_FIELDS = tuple(f for f in settings.fields(CrawlConfig) if f.about.spider)


def layered(spider: object, command_line: Mapping[str, Any] | None = None,
            base: CrawlConfig | None = None) -> CrawlConfig:
    """Defaults < the spider's class attributes < the command line (None = not given)."""
    mistake = settings.misspelt(type(spider), _SPIDER_FIELDS)
    if mistake is not None:
        # A warning, not a refusal: the attribute may be the user's own (max_page = 50, the
        # last page of a catalogue), and a working spider must not stop working.
        _status.warning("%s", mistake)
    config = base or CrawlConfig()
    config = config.with_overrides({k: getattr(spider, k, None) for k in SPIDER_SETTINGS})
    given = dict(command_line or {})
    if given.get("headers") is not None:
        # Headers add to the spider's, name by name: `--header 'X-Debug: 1'` must not drop
        # the spider's Accept-Language (a name given again wins, whatever its case: it is
        # sent once).
        names = {name.lower() for name in given["headers"]}
        given["headers"] = {**{k: v for k, v in config.headers.items()
                               if k.lower() not in names}, **given["headers"]}
    return config.with_overrides(given)
