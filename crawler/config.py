"""The crawl's settings: one frozen dataclass. Precedence: defaults < spider < command line."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yarl import URL

from crawler import settings
from crawler.errors import ConfigError
from crawler.settings import Option, setting

_status = logging.getLogger("crawler.status")  # shown even with --quiet

DEFAULT_USER_AGENT = "crawler/0.1 (polite asyncio web crawler)"
MAX_LINKS = 10_000  # links one page may add (Heritrix caps a page's outlinks too)


OUTPUT_FORMATS = ("jsonl", "json", "csv")
"""What items can be written as, by `output` feeds and `crawl export`."""
def _outputs(name: str, outputs: tuple[str, ...]) -> None:
    if isinstance(outputs, str):  # a str is a sequence too: of one-letter files
        raise ConfigError(f'{name} must be a list of files, e.g. ["items.jsonl"], not '
                          f"{outputs!r}")


def _output_format(name: str, fmt: str | None) -> None:
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"{name} must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")


def _user_agent(name: str, value: str) -> None:
    if not value.strip():
        raise ConfigError(f"{name} must be a non-empty string")
    check_header_value("User-Agent", value, setting=name)


def _patterns(name: str, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ConfigError(f"{name} pattern {pattern!r} is not a valid regular "
                              f"expression: {exc}") from None


# RFC 9110's token: what a header's name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
REDACTED = "***"


def headers_from_text(items: Sequence[str]) -> dict[str, str]:
    """Headers from the command line's 'Name: value' texts (a repeated name: the last)."""
    headers = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header takes 'NAME: VALUE', not {item!r}")
        headers[name.strip()] = value.strip(" \t")
    return headers


def _headers(name: str, headers: Mapping[str, str]) -> None:
    for key, value in headers.items():
        if not _TOKEN.fullmatch(key):
            raise ConfigError(f"{name}: {key!r} is not a header name (letters, digits and "
                              "!#$%&'*+-.^_`|~ only)")
        if key.lower() in ("user-agent", "host", "content-length", "transfer-encoding"):
            hint = "set user_agent" if key.lower() == "user-agent" else "it is the crawler's"
            raise ConfigError(f"{name}: the {key} header cannot be set here ({hint})")
        check_header_value(key, value, setting=name)


def _auth(name: str, auth: Mapping[str, tuple[str, ...]]) -> None:
    for host, pair in auth.items():
        if not _auth_key_ok(host):
            raise ConfigError(f"{name}: {host!r} is neither a host name nor an origin (auth is "
                              'per host or origin, e.g. {"api.example": ("user", "password")} '
                              'or {"https://api.example:8443": ...}: no path, query or user)')
        if len(pair) != 2:
            raise ConfigError(f"{name}: the credentials for {host} must be (user, password)")
        if ":" in pair[0]:
            raise ConfigError(f"{name}: the user name for {host} holds a ':', which basic "
                              "auth cannot send")
        if any(_HEADER_CONTROL.search(part) for part in pair):
            raise ConfigError(f"{name}: the credentials for {host} hold a control character")


def _auth_key_ok(key: str) -> bool:
    """A host name, or an origin: http(s)://HOST[:PORT] and nothing else."""
    if "://" not in key:
        return bool(key) and not any(c in key for c in "/:@ ")
    try:
        url = URL(key)
    except ValueError:
        return False
    return (url.scheme in ("http", "https") and bool(url.raw_host) and url.raw_user is None
            and url.raw_password is None and url.raw_path in ("", "/")
            and not url.raw_query_string and not url.raw_fragment and "?" not in key
            and "#" not in key)


def _host_keys(name: str, policies: Mapping[str, object]) -> None:
    """A host policy's key is a host or domain name as URLs hold it: with a scheme, port
    or path it would match no host, and the policy would be silently ignored."""
    for host in policies:
        if not host or any(c in host for c in "/@ ") or host != host.strip(".") \
                or (":" in host and not _ipv6(host)):
            raise ConfigError(f"{name}: {host!r} is not a host or domain name (e.g. "
                              '{"example.org": HostPolicy(delay=5)}: no scheme, port or '
                              "path)")


def _ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _proxy(name: str, proxy: str | None) -> None:
    if proxy is None:
        return
    try:
        url = URL(proxy)
    except ValueError:
        url = URL()
    shown = redact_url(proxy)
    if url.scheme in ("socks4", "socks5", "socks5h"):
        raise ConfigError(f"{name}: SOCKS proxies are not supported ({shown}); use an HTTP "
                          "or HTTPS proxy")
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/") \
            or url.query_string or url.fragment:
        raise ConfigError(f"{name} must be http://[USER:PASSWORD@]HOST[:PORT] (or https://), "
                          f"not {shown!r}")


def redact_url(text: str) -> str:
    """A URL without its password (and user name): for messages and the stored config."""
    try:
        url = URL(text)
    except ValueError:
        return REDACTED
    if url.raw_user is None and url.raw_password is None:
        return text
    return str(url.with_user(None)).replace("://", f"://{REDACTED}@", 1)


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Politeness for one host or domain (and its subdomains), overriding the crawl's."""

    per_host: int | None = setting(None, low=1, help="requests in flight to the host")
    delay: float | None = setting(None, low=0,
                                  help="seconds between request starts to the host")

    def __post_init__(self) -> None:
        settings.validate(self)


def host_policies_from_text(per_host: Sequence[str],
                            delay: Sequence[str]) -> dict[str, HostPolicy]:
    """Host policies from the command line's HOST=N and HOST=SECONDS texts."""
    caps = {host: int(_number(value, f"--host-per-host {host}", whole=True))
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


def _number(text: str, what: str, *, whole: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None
    if whole and not value.is_integer():
        raise ConfigError(f"{what}: {text!r} is not a whole number")
    return value


def resolve_from_text(items: Sequence[str]) -> dict[str, str]:
    """DNS answers from the command line's HOST:ADDRESS texts."""
    return dict(map(_host_address, items))


def _host_address(item: str) -> tuple[str, str]:
    host, sep, addr = item.partition(":")  # an IPv6 address keeps its colons: h.test:::1
    if not sep or not host or not addr:
        raise ConfigError(f"--resolve takes HOST:ADDRESS, not {item!r}")
    return host, addr


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
    user_agent: str = setting(DEFAULT_USER_AGENT, spider=True, shown=True, check=_user_agent,
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
        (), spider=True, defines_crawl=True, check=_patterns,
        cli=Option("--include", "REGEX", repeat=True),
        help="follow only URLs matching one of these regular expressions")
    exclude: tuple[str, ...] = setting(
        (), spider=True, defines_crawl=True, check=_patterns,
        cli=Option("--exclude", "REGEX", repeat=True),
        help="do not follow URLs matching any of these regular expressions")
    strip_tracking: bool = setting(
        False, spider=True, defines_crawl=True, cli=Option("--strip-tracking"),
        help="drop tracking query parameters (utm_*, fbclid, gclid, ...) from URLs")
    sort_query: bool = setting(
        False, spider=True, defines_crawl=True, cli=Option("--sort-query"),
        help="sort query parameters so reordered queries are one page")
    host_policies: Mapping[str, HostPolicy] = setting(
        {}, spider=True, parse=host_policies_from_text, check=_host_keys,
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
        {}, spider=True, parse=headers_from_text, check=_headers,
        cli=Option("--header", "'NAME: VALUE'", repeat=True,
                   help="a header sent with every request (added to the spider's headers; "
                   "a name given again replaces its value)"),
        help='headers sent with every request, e.g. {"Accept-Language": "en"}')
    auth: Mapping[str, tuple[str, ...]] = setting(
        {}, spider=True, check=_auth,
        help='HTTP basic auth per host, e.g. {"api.example": ("user", "password")}, or per '
        'origin ("https://api.example:8443"): sent to that host only (not its subdomains, '
        "not after a redirect elsewhere); never stored or logged")
    proxy: str | None = setting(
        None, spider=True, check=_proxy, cli=Option("--proxy", "URL"),
        help="send every request through this HTTP or HTTPS proxy "
        "(http://[USER:PASSWORD@]HOST[:PORT]); politeness stays per target host")
    dns_ttl: float = setting(300.0, low=0,
                             help="seconds a DNS answer is cached by the connection pool")
    keepalive_timeout: float = setting(30.0, low=0,
                                       help="seconds an idle keep-alive connection is kept")
    output: tuple[str, ...] = setting(
        (), spider=True, check=_outputs,
        cli=Option("--output", "FILE", repeat=True, short="-o",
                   help="write the items to FILE as they are committed, each once, in "
                   "commit order, across kill -9 and resume (format from the extension: "
                   ".jsonl, .json, .csv; - for stdout)"),
        help="files the items are written to as they are committed (.jsonl, .json or .csv; "
        '"-" for stdout), e.g. ["items.jsonl"]: each item once, in commit order, even across '
        "kill -9 and resume")
    output_format: str | None = setting(
        None, spider=True, check=_output_format,
        cli=Option("--output-format", "FORMAT"),
        help="the format of every output, instead of its extension's: jsonl, json or csv")
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

# Control characters end a header line (CR, LF) or the header block, or are refused by
# servers: a value holding one would inject headers or break every request.
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_header_value(name: str, value: str, *, setting: str) -> None:
    """Refuse a header value that is not one line of text (ConfigError, saying where)."""
    bad = _HEADER_CONTROL.search(value)
    if bad is not None:
        raise ConfigError(
            f"{setting}: the {name} header value {value!r} holds the control character "
            f"{bad.group()!r} at position {bad.start()}; header values must be one line of "
            "text (no CR, LF or other control characters)")
    if value != value.strip(" \t"):
        raise ConfigError(f"{setting}: the {name} header value {value!r} starts or ends with "
                          "white space, which HTTP does not keep")


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
