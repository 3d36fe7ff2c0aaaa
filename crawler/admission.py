"""Which discovered URLs become requests: scope, include/exclude patterns, depth, robots.txt.

Every link a callback yields and every redirect target passes through `Admission.admit`;
a URL it turns away is a counted outcome (a `Skip`), never an exception.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from yarl import URL

from crawler import robots, urls
from crawler.config import CrawlConfig
from crawler.scope import Scope
from storage import DUPLICATE_COUNTER


class Skip(enum.StrEnum):
    """Requests not admitted, each a counted outcome (never an exception)."""

    DUPLICATE = DUPLICATE_COUNTER
    OFFSITE = "skipped_offsite"
    DEPTH = "skipped_depth"
    INVALID_URL = "skipped_invalid_url"
    NON_HTML = "skipped_non_html"
    ROBOTS = "skipped_robots"
    EXCLUDED = "skipped_excluded"


RECENT_KEYS = 50_000


class RecentKeys:
    """Keys admitted lately, kept in two generations of at most `size` each.

    The store's dedup is the authority (a row per URL, ever); this spares it, and the checks
    before it (robots.txt rules especially), the links a site repeats on every page.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._new: set[str] = set()
        self._old: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self._new or key in self._old

    def add(self, key: str) -> None:
        if len(self._new) >= self._size:
            self._old, self._new = self._new, set()
        self._new.add(key)


@dataclass(frozen=True, slots=True)
class _Origin:
    """What admission needs of an origin, worked out once for all its links."""

    in_scope: bool
    robots_origin: str


ORIGINS = 10_000  # origins remembered; a wide crawl's stream of new hosts must not grow it


class Admission:
    """Decides on canonical URL text (`Request.key`): a link-heavy page brings fifty links
    or more, so nothing here parses a URL more than once per origin."""

    def __init__(self, config: CrawlConfig, scope: Scope,
                 robots_forbid: Callable[[str, str], bool] | None) -> None:
        self._config = config
        self._scope = scope
        self._robots_forbid = robots_forbid
        self._include = [re.compile(p) for p in config.include]
        self._exclude = [re.compile(p) for p in config.exclude]
        self._recent = RecentKeys(RECENT_KEYS)
        self._origins: dict[str, _Origin] = {}

    def admit(self, key: str | None, depth: int, skipped: Counter[str]) -> str | None:
        """The key (the canonical URL's text), tidied, if it may be queued at `depth`; else
        None, with the reason counted."""
        if key is None:
            skipped[Skip.INVALID_URL] += 1
            return None
        key = self.tidy(key)
        if key in self._recent:
            skipped[Skip.DUPLICATE] += 1
            return None
        reason = self._reason(key, depth)
        if reason is not None:
            skipped[reason] += 1
            return None
        return key

    def remember(self, keys: Iterable[str]) -> None:
        """Keys now on their way to the store (their completion is recorded): later links to
        them are duplicates. Not before: a callback that fails loses its requests."""
        for key in keys:
            self._recent.add(key)

    def tidy(self, key: str) -> str:
        cfg = self._config
        if cfg.strip_tracking or cfg.sort_query:
            url = urls.tidy_query(URL(key, encoded=True), strip_tracking=cfg.strip_tracking,
                                  sort=cfg.sort_query)
            return str(url)
        return key

    def _reason(self, key: str, depth: int) -> Skip | None:
        origin = self._origin(urls.origin_of(key))
        if not origin.in_scope:
            return Skip.OFFSITE
        if (self._include or self._exclude) and self._excluded(key):
            return Skip.EXCLUDED
        max_depth = self._config.max_depth
        if max_depth is not None and depth > max_depth:
            return Skip.DEPTH
        if self._robots_forbid is not None and self._robots_forbid(origin.robots_origin, key):
            return Skip.ROBOTS
        return None

    def _origin(self, text: str) -> _Origin:
        known = self._origins.get(text)
        if known is None:
            if len(self._origins) >= ORIGINS:
                self._origins.clear()
            url = URL(text + "/", encoded=True)
            known = self._origins[text] = _Origin(
                url.host is not None and self._scope.allows_host(url.host), robots.origin(url))
        return known

    def _excluded(self, text: str) -> bool:
        """Outside the include patterns (when there are any) or inside an exclude one."""
        if self._include and not any(p.search(text) for p in self._include):
            return True
        return any(p.search(text) for p in self._exclude)
