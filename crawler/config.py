"""The crawl's settings: one frozen dataclass. Precedence: defaults < spider < command line."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crawler.errors import ConfigError

DEFAULT_USER_AGENT = "crawler/0.1 (polite asyncio web crawler)"
MAX_LINKS = 10_000  # links one page may add (Heritrix caps a page's outlinks too)


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Politeness for one host or domain (and its subdomains), overriding the crawl's."""

    per_host: int | None = None
    delay: float | None = None

    def __post_init__(self) -> None:
        _check("per_host", self.per_host, "optional int", 1)
        if self.delay is not None:
            _check("delay", self.delay, "float", 0)


@dataclass(frozen=True, slots=True)
class CrawlConfig:
    """How a crawl behaves. Defaults are polite to sites you do not own."""

    workers: int = 16
    """Requests in flight at once, over all hosts."""
    per_host: int = 2
    """Requests in flight at once to one host (host:port)."""
    delay: float = 0.5
    """Seconds between the starts of two requests to one host."""
    max_pages: int | None = None
    """Stop after this many requests have finished (over every run of the crawl)."""
    max_depth: int | None = None
    """Do not follow links deeper than this (start URLs are depth 0)."""
    timeout: float = 30.0
    """Seconds for a whole request, body included."""
    connect_timeout: float = 10.0
    """Seconds to open a connection."""
    read_timeout: float = 20.0
    """Seconds to wait for the next chunk of a response."""
    user_agent: str = DEFAULT_USER_AGENT
    max_body: int = 16 * 1024 * 1024
    """Bytes of (decompressed) body kept; a larger response fails as too large."""
    max_redirects: int = 10
    """Redirect hops followed from one request."""
    max_links: int = MAX_LINKS
    """Links one page may add to the crawl; a URL counts once more per 256 characters. The
    rest are counted as `skipped_link_limit` (bounds what one hostile page costs)."""
    max_retries: int = 3
    """Times a retryable failure is retried before the request fails for good."""
    retry_backoff: float = 2.0
    """Seconds before the first retry; doubles each time, with jitter."""
    dns_ttl: float = 300.0
    """Seconds a DNS answer is cached by the connection pool."""
    keepalive_timeout: float = 30.0
    """Seconds an idle keep-alive connection is kept."""
    dead_after: int = 5
    """Consecutive connection failures after which a host is down for the rest of the run:
    its queued requests fail at once (`--retry-failed` queues them again later)."""
    obey_robots: bool = True
    """Fetch and obey each host's robots.txt (RFC 9309) before crawling it."""
    max_crawl_delay: float = 30.0
    """A robots.txt Crawl-delay is obeyed up to this many seconds."""
    include: tuple[str, ...] = ()
    """Regular expressions: when given, only URLs matching one of them are followed."""
    exclude: tuple[str, ...] = ()
    """Regular expressions: URLs matching any of them are not followed."""
    strip_tracking: bool = False
    """Drop tracking query parameters (utm_*, fbclid, gclid, ...) from discovered URLs."""
    sort_query: bool = False
    """Sort query parameters, so that ?a=1&b=2 and ?b=2&a=1 are one page."""
    resolve: Mapping[str, str] = field(default_factory=dict)
    """Static host -> address overrides, like curl's --resolve."""
    host_policies: Mapping[str, HostPolicy] = field(default_factory=dict)
    """Per-host or per-domain concurrency and delay, e.g. {"example.org": HostPolicy(1, 5)}."""
    allow_private: bool = False
    """Connect to private network addresses (loopback, RFC 1918, link-local, ...) even when
    the start URLs are public. A crawl whose start URL is itself private allows them."""

    def __post_init__(self) -> None:
        for name, (kind, lowest) in _RULES.items():
            _check(name, getattr(self, name), kind, lowest)
        if not isinstance(self.user_agent, str) or not self.user_agent.strip():
            raise ConfigError("user_agent must be a non-empty string")
        check_header_value("User-Agent", self.user_agent, setting="user_agent")
        for name in ("include", "exclude"):
            for pattern in getattr(self, name):
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as exc:
                    raise ConfigError(f"{name} pattern {pattern!r} is not a valid regular "
                                      f"expression: {exc}") from None
        if not isinstance(self.resolve, Mapping):
            raise ConfigError("resolve must map host names to addresses")
        if not isinstance(self.host_policies, Mapping) or not all(
                isinstance(p, HostPolicy) for p in self.host_policies.values()):
            raise ConfigError("host_policies must map host names to HostPolicy")

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

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=dict)


# field -> (type, lowest allowed value); "optional" ints may also be None.
_RULES: dict[str, tuple[str, float]] = {
    "workers": ("int", 1), "per_host": ("int", 1), "max_redirects": ("int", 1),
    "max_retries": ("int", 0), "max_body": ("int", 1), "dead_after": ("int", 1),
    "max_links": ("int", 0),
    "max_pages": ("optional int", 0), "max_depth": ("optional int", 0),
    "delay": ("float", 0), "timeout": ("float", 1e-3), "connect_timeout": ("float", 1e-3),
    "read_timeout": ("float", 1e-3), "retry_backoff": ("float", 0), "dns_ttl": ("float", 0),
    "keepalive_timeout": ("float", 0), "max_crawl_delay": ("float", 0),
    "obey_robots": ("bool", 0), "strip_tracking": ("bool", 0), "sort_query": ("bool", 0),
    "allow_private": ("bool", 0),
}
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


def _check(name: str, value: Any, kind: str, lowest: float) -> None:
    if value is None and kind == "optional int":
        return
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False, not {value!r}")
        return
    if isinstance(value, bool):
        ok = False
    elif kind.endswith("int"):
        ok = isinstance(value, int)
    else:
        ok = isinstance(value, int | float) and math.isfinite(value)
    if not ok:
        expected = "a whole number" if kind.endswith("int") else "a finite number"
        raise ConfigError(f"{name} must be {expected}, not {value!r}")
    if value < lowest:
        raise ConfigError(f"{name} must be at least {lowest:g}, not {value!r}")


SPIDER_SETTINGS = ("workers", "per_host", "delay", "max_pages", "max_depth", "timeout",
                   "user_agent", "max_retries", "max_body", "max_redirects", "obey_robots",
                   "host_policies", "include", "exclude", "strip_tracking", "sort_query",
                   "max_crawl_delay", "allow_private", "max_links")
"""Settings a spider may set as class attributes of the same name."""


def layered(spider: object, command_line: Mapping[str, Any] | None = None,
            base: CrawlConfig | None = None) -> CrawlConfig:
    """Defaults < the spider's class attributes < the command line (None = not given)."""
    config = base or CrawlConfig()
    config = config.with_overrides({k: getattr(spider, k, None) for k in SPIDER_SETTINGS})
    return config.with_overrides(command_line or {})
