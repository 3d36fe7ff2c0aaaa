"""Resolving a page's hrefs to canonical URL text, fast, with a cache of joins the crawl owns."""

from __future__ import annotations

import re

from yarl import URL

from crawler.urls.canon import HREF_WHITESPACE, MAX_URL_LENGTH, CanonicalURL, canonical, join
from crawler.urls.origin import origin_of

JOIN_CACHE_SIZE = 20_000
JOIN_CACHE_CHARS = 300  # longer hrefs (with the base they depend on) are joined uncached
# An absolute URL or a scheme-relative one, with a host: little of the base matters.
_WITH_HOST = re.compile(r"(?:[Hh][Tt][Tt][Pp][Ss]?:)?//[^/?#\\]")
# An absolute path (and query) of unreserved characters only: its canonical form is itself.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9_.~/-]{0,200}(?:\?[A-Za-z0-9_.~=&-]{1,300})?")


class JoinCache:
    """Joins already made, shared by the pages of one crawl (the crawl makes one and hands it
    to every Response). Links repeat across pages (menus, sidebars, footers), and a join
    (parse, join, canonicalise) costs far more than a lookup.

    The key is the href with the part of the base URL its result depends on (see
    `Resolver.join`). Full, it is emptied: a bound, not an LRU, because keeping order would
    cost every hit, and a crawl's repeated links come back soon after."""

    def __init__(self, size: int = JOIN_CACHE_SIZE) -> None:
        self.size = size
        self.entries: dict[tuple[str, str], CanonicalURL | None] = {}
        """Read directly by `Resolver.join`: a hit is one dict lookup, no call."""

    def add(self, key: tuple[str, str], text: CanonicalURL | None) -> None:
        if len(self.entries) >= self.size:
            self.entries.clear()
        self.entries[key] = text

    def __len__(self) -> int:
        return len(self.entries)


class Resolver:
    """Resolves the hrefs of one page to canonical URL text, through the crawl's JoinCache.

    The cache key is the href with the part of the base URL its result depends on: nothing
    for an absolute URL, the origin for "/path", the folder for "path" or "../path", the
    whole base for "?query" or "#fragment".
    """

    __slots__ = ("_add", "_fast", "_folder", "_full", "_joined", "_origin", "base")

    def __init__(self, base: URL, joins: JoinCache | None = None) -> None:
        self.base = base
        joins = JoinCache() if joins is None else joins  # None: this page's own, no more
        self._joined, self._add = joins.entries, joins.add
        canon = canonical(base)
        if canon is None:  # not crawlable: every href is keyed on the whole base
            self._full = self._folder = self._origin = str(base)
            self._fast = False
            return
        # The canonical spelling ("http://h/", never "http://h"), so the folder is right.
        self._full = canon
        self._folder = canon.partition("?")[0].rsplit("/", 1)[0]
        site = origin_of(canon)
        assert site is not None  # a canonical URL always has a path
        self._origin = site
        self._fast = True

    def join(self, href: str) -> CanonicalURL | None:
        """The canonical URL's text, or None if the href cannot be crawled. Text, not a yarl
        URL: on link-heavy pages, building one URL object per link was the crawl's biggest
        single cost, and dedup, scope and robots.txt only need the text."""
        if self._fast and _PLAIN_PATH.fullmatch(href) and "/." not in href \
                and "//" not in href and len(self._origin) + len(href) <= MAX_URL_LENGTH:
            # Already canonical ("/p/12", "/a/b.html"): no parsing, joining or escaping to
            # do, and nothing a cache would save. On link-heavy sites most links look so.
            # A CanonicalURL without the NewType's call, a Python call that would add a
            # fifth to the cost of this path, taken by most links.
            return self._origin + href  # type: ignore[return-value]
        href = href.strip(HREF_WHITESPACE)
        if len(href) > MAX_URL_LENGTH:
            return None
        # The fragment never changes the canonical URL (it is dropped), so "os.html#a" and
        # "os.html#b" are one entry.
        href = href.partition("#")[0]
        if _WITH_HOST.match(href):
            depends = "" if href[0] in "hH" else self._origin
        elif href.startswith("/") and not href.startswith("//"):
            depends = self._origin
        elif href and href[0] not in "/?" and ":" not in href.partition("/")[0]:
            depends = self._folder  # a relative path: "a.html", "../a.html"
        else:  # "", "?q", or something odd ("//", "http://", "http:x"): the whole base
            depends = self._full
        key = (depends, href)
        try:
            return self._joined[key]
        except KeyError:
            pass
        text = join(self.base, href)
        if len(depends) + len(href) > JOIN_CACHE_CHARS:
            return text  # a cache of 2,000-character URLs would take 100 MB; they rarely repeat
        self._add(key, text)
        return text
