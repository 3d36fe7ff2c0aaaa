"""Which discovered URLs become requests: scope, include/exclude patterns, depth, robots.txt.

Every link a callback yields and every redirect target passes through `Admission.admit`;
a URL it turns away is a counted outcome (a `Skip`), never an exception.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable

from yarl import URL

from crawler.config import CrawlConfig
from crawler.model.request import Request
from crawler.model.specs import RequestExtra
from crawler.urls import canon as urls
from crawler.urls.canon import CanonicalURL
from crawler.urls.origin import Origin, origin_of
from crawler.urls.scope import Scope
from storage import DUPLICATE_COUNTER, PARKED_COUNTER, NewRequest


class Skip(enum.StrEnum):
    """Requests not admitted, each a counted outcome (never an exception)."""

    DUPLICATE = DUPLICATE_COUNTER
    OFFSITE = "skipped_offsite"
    DEPTH = PARKED_COUNTER  # parked by the store, which counts them
    INVALID_URL = "skipped_invalid_url"
    NON_HTML = "skipped_non_html"
    ROBOTS = "skipped_robots"
    EXCLUDED = "skipped_excluded"
    LINK_LIMIT = "skipped_link_limit"  # over what one page may add (`max_links`)


LINK_COST_CHARS = 256  # a URL counts as one more link per this many characters


STRIPPED_CREDENTIALS = "stripped_credentials"
"""Links that named a user or password: admitted without them (never sent, never stored)."""

RECENT_KEYS = 50_000
RECENT_CHARS = 4_000_000  # and at most about this much URL text a generation


class RecentKeys:
    """Keys admitted lately, kept in two generations of about `size` keys and `chars`
    characters each (a page's keys go in together, so a generation may end a little over):
    bounded in memory however long the URLs.

    The store's dedup is the authority (a row per URL, ever); this spares it, and the checks
    before it (robots.txt rules especially), the links a site repeats on every page.
    """

    def __init__(self, size: int, chars: int = RECENT_CHARS) -> None:
        self._size = size
        self._chars = chars
        self._new_chars = 0
        self._new: set[str] = set()
        self._old: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self._new or key in self._old

    def update(self, keys: Collection[str]) -> None:
        self._new.update(keys)
        self._new_chars += sum(map(len, keys))
        if len(self._new) >= self._size or self._new_chars >= self._chars:
            self._old, self._new = self._new, set()
            self._new_chars = 0


ORIGINS = 10_000  # origins remembered; a wide crawl's stream of new hosts must not grow it


# A dont_filter request's own number: not its id(), which a later request may reuse once it
# is freed (and would then be a "duplicate" of a key remembered long ago).
_UNIQUE = itertools.count()


def _dedup_key(key: CanonicalURL, extra: RequestExtra) -> str:
    """What tells a request with extras from others (the store's dedup is the authority):
    its method, URL and body; a dont_filter request is like no other."""
    if extra.unique:
        return f"{key} unique {next(_UNIQUE)}"
    if extra.method is None and extra.body is None:
        return key  # a GET with headers is the GET of its URL
    digest = hashlib.blake2b(extra.body or b"", digest_size=12).hexdigest()
    return f"{extra.method or 'GET'} {key} {digest}"


class Admission:
    """Decides on canonical URLs (`Request.key`): nothing here parses a URL more than
    once per origin, unless queries are to be tidied (`strip_tracking`, `sort_query`)."""

    def __init__(self, config: CrawlConfig, scope: Scope,
                 robots_forbid: Callable[[Origin, CanonicalURL], bool] | None) -> None:
        self._config = config
        self._scope = scope
        self._robots_forbid = robots_forbid
        self._include = [re.compile(p) for p in config.include]
        self._exclude = [re.compile(p) for p in config.exclude]
        self._patterns = bool(self._include or self._exclude)
        self._tidying = config.strip_tracking or config.sort_query
        self._recent = RecentKeys(RECENT_KEYS)
        self._origins: dict[Origin, bool] = {}  # in scope or not

    def admit(self, found: Iterable[Request], depth: int, parent: int | None,
              skipped: Counter[str], *,
              redirects: int = 0) -> dict[str, NewRequest]:
        """The requests found (on one page, or by one redirect) that may be queued at
        `depth`, by dedup key (a plain GET's is its canonical URL), each once; the others
        counted in `skipped` by reason. Beyond `max_depth` (see `too_deep`), they are to be
        parked, and robots.txt is not asked yet.
        What one page adds is bounded: `max_links` links, a long URL counting as several.

        The crawl's hottest loop (fifty links a page or more), hence one loop with the
        checks inline; they run cheapest first and in the order their reasons are counted."""
        admitted: dict[str, NewRequest] = {}
        recent = self._recent
        room = self._config.max_links
        max_depth = self._config.max_depth
        too_deep = max_depth is not None and depth > max_depth
        for req in found:
            key = req.key
            if key is None:
                skipped[Skip.INVALID_URL] += 1
                continue
            if req.credentials:
                skipped[STRIPPED_CREDENTIALS] += 1
            if self._tidying:
                key = self._tidy(key)
            extra = req.extra
            # A plain GET is known by its URL; any other request by a key of its own.
            seen = key if extra is None else _dedup_key(key, extra)
            if seen in admitted or seen in recent:
                skipped[Skip.DUPLICATE] += 1
                continue
            site = origin_of(key)
            if site is None:  # not canonical text: only a misused Request.prepared gives it
                skipped[Skip.INVALID_URL] += 1
                continue
            if not self._in_scope(site):
                skipped[Skip.OFFSITE] += 1
            elif self._patterns and self._excluded(key):
                skipped[Skip.EXCLUDED] += 1
            elif not too_deep and self._robots_forbid is not None \
                    and self._robots_forbid(site, key):
                skipped[Skip.ROBOTS] += 1
            elif (room := room - 1 - len(key) // LINK_COST_CHARS) < 0:
                skipped[Skip.LINK_LIMIT] += 1
            elif extra is None:
                admitted[key] = NewRequest(key, req.callback, req.cb_kwargs_json,
                                           req.priority, depth, redirects, parent)
            else:
                admitted[seen] = NewRequest(key, req.callback, req.cb_kwargs_json,
                                            req.priority, depth, redirects, parent, *extra)
        return admitted

    @property
    def scope(self) -> Scope:
        return self._scope

    def too_deep(self, depth: int) -> bool:
        """Requests found at `depth` are beyond `max_depth`: they are parked in the store, to
        be queued if a later run of the crawl goes deeper, instead of being dropped."""
        max_depth = self._config.max_depth
        return max_depth is not None and depth > max_depth

    def remember(self, keys: Collection[str]) -> None:
        """Keys now on their way to the store (their completion is recorded): later links to
        them are duplicates. Not before: a callback that fails loses its requests."""
        self._recent.update(keys)

    def _tidy(self, key: CanonicalURL) -> CanonicalURL:
        cfg = self._config
        return urls.tidy_query(key, strip_tracking=cfg.strip_tracking, sort=cfg.sort_query)

    def _in_scope(self, site: Origin) -> bool:
        known = self._origins.get(site)
        if known is None:
            if len(self._origins) >= ORIGINS:
                self._origins.clear()
            known = self._origins[site] = self._scope.allows_url(URL(site + "/", encoded=True))
        return known

    def _excluded(self, text: str) -> bool:
        """Outside the include patterns (when there are any) or inside an exclude one."""
        if self._include and not any(p.search(text) for p in self._include):
            return True
        return any(p.search(text) for p in self._exclude)
