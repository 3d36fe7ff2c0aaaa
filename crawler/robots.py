"""robots.txt per RFC 9309: what a host's file, or its absence, allows. Pure decisions."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protego import Protego
from yarl import URL

MAX_BYTES = 512 * 1024  # RFC 9309: parse at least the first 500 KiB
MAX_AGE = 24 * 3600.0  # RFC 9309: do not use a cached copy for more than 24 hours
MAX_REDIRECTS = 5  # RFC 9309: follow at least five consecutive redirects


class RobotsState(enum.Enum):
    RULES = "rules"  # 2xx: the file's rules apply
    ALLOW_ALL = "allow_all"  # 4xx: "unavailable", everything may be crawled
    UNREACHABLE = "unreachable"  # 5xx or no answer: disallow everything for now


@dataclass(frozen=True, slots=True)
class Robots:
    state: RobotsState
    fetched_at: float  # on the crawl's monotonic clock
    rules: Protego | None = None
    reason: str = ""

    def allows(self, url: str, user_agent: str) -> bool:
        if self.state is RobotsState.RULES:
            assert self.rules is not None
            return bool(self.rules.can_fetch(url, user_agent))
        return self.state is RobotsState.ALLOW_ALL

    def crawl_delay(self, user_agent: str) -> float | None:
        if self.rules is None:
            return None
        delay = self.rules.crawl_delay(user_agent)
        return None if delay is None else float(delay)

    @property
    def sitemaps(self) -> list[str]:
        return [] if self.rules is None else list(self.rules.sitemaps)

    def expired(self, now: float) -> bool:
        return now - self.fetched_at > MAX_AGE


def origin(url: URL) -> str:
    """robots.txt applies per scheme, host and port."""
    return f"{url.scheme}://{url.host}:{url.port}"


def robots_url(url: URL) -> URL:
    return url.with_path("/robots.txt").with_query(None).with_fragment(None)


def from_response(status: int, body: bytes, now: float) -> Robots:
    """The policy a final (non-redirect) robots.txt response sets."""
    if 200 <= status < 300:
        text = body[:MAX_BYTES].decode("utf-8", errors="replace")
        return Robots(RobotsState.RULES, now, Protego.parse(text))
    if 400 <= status < 500:
        return Robots(RobotsState.ALLOW_ALL, now)
    return Robots(RobotsState.UNREACHABLE, now, reason=f"robots.txt answered HTTP {status}")


def unreachable(reason: str, now: float) -> Robots:
    return Robots(RobotsState.UNREACHABLE, now, reason=reason)
