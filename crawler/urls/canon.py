"""Canonical URLs: the one form a URL is deduplicated, scoped and stored under."""

from __future__ import annotations

import re

from yarl import URL

HTTP_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2048
# The HTML spec strips ASCII whitespace around an href before parsing it.
_HREF_WHITESPACE = " \t\n\r\f"
# A DNS name (labels of letters, digits, '-' and '_', as IDNA-encoded by yarl) or an IP.
_VALID_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|[0-9a-f:.]+")


def canonical(url: URL) -> URL | None:
    """The canonical form of an absolute URL, or None if it is not a crawlable http(s) URL.

    yarl already lower-cases scheme and host, encodes IDNA hosts, drops default ports,
    removes dot segments and normalises percent-encoding; the path's case is kept (paths are
    case-sensitive). Here: http(s) only, no user name or password (a link must not make the
    crawler send credentials, nor keep them in the state file), fragment dropped, an empty
    path spelt "/".
    """
    if url.scheme not in HTTP_SCHEMES or not url.raw_host:
        return None
    if not _VALID_HOST.fullmatch(url.raw_host):
        return None
    if url.raw_user is not None or url.raw_password is not None:
        url = url.with_user(None)
    if url.explicit_port is not None and url.is_default_port():
        url = url.with_port(None)
    if url.raw_fragment:
        url = url.with_fragment(None)
    if url.raw_path == "/":
        # yarl reports "/" for "http://h" but prints no slash; spell the root one way.
        url = URL.build(scheme=url.scheme, authority=url.raw_authority, path="/",
                        query_string=url.raw_query_string, encoded=True)
    return url


# A "%" that starts no escape. Browsers send it as it is; yarl would encode it as "%25",
# which names another resource than the page links to. It is swapped for a private-use
# character around yarl's parsing, and that character's escape back for "%" after it.
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_MARK = "\ue000"
_MARK_ESCAPED = "%EE%80%80"
_AUTHORITY = re.compile(r"[^/?#\\]*")


def has_credentials(text: str) -> bool:
    """Whether URL text names a user or password ("http://u:p@h/"): cheap, for every link."""
    if "@" not in text or "//" not in text:
        return False
    authority = _AUTHORITY.match(text.partition("//")[2])
    return authority is not None and "@" in authority.group()


def _parse(text: str, base: str = "") -> tuple[URL, bool]:
    """yarl's URL for text, and whether lone "%" signs were masked (see `_unmask`): never
    when the text, or the base it will be joined to, holds the mark's escape already."""
    if "%" in text and _LONE_PERCENT.search(text) and _MARK not in text \
            and _MARK_ESCAPED not in text.upper() and _MARK_ESCAPED not in base.upper():
        return URL(_LONE_PERCENT.sub(_MARK, text)), True
    return URL(text), False


def _unmask(url: URL | None) -> URL | None:
    if url is None:
        return None
    text = str(url)
    return url if _MARK_ESCAPED not in text else URL(text.replace(_MARK_ESCAPED, "%"),
                                                     encoded=True)


def parse_absolute(text: str) -> URL:
    """Parse a URL a user typed (a start URL). Raises ValueError with a readable message."""
    try:
        parsed, masked = _parse(text.strip(_HREF_WHITESPACE))
        url = canonical(parsed)
        if masked:
            url = _unmask(url)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed URL {text!r}: {exc}") from None
    if url is None:
        raise ValueError(f"not an absolute http(s) URL with a valid host: {text!r}")
    if len(str(url)) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters: {text[:80]!r}...")
    return url


def join(base: URL, href: str) -> URL | None:
    """Resolve an href against a base URL; None for malformed, non-http or over-long ones."""
    href = href.strip(_HREF_WHITESPACE)
    if len(href) > MAX_URL_LENGTH:
        return None
    try:
        parsed, masked = _parse(href, str(base))
        url = canonical(base.join(parsed))
        if masked:
            url = _unmask(url)
    except (ValueError, TypeError, UnicodeError):
        return None
    if url is None or len(str(url)) > MAX_URL_LENGTH:
        return None
    return url


TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "mc_cid", "mc_eid",
    "_ga", "_gl", "igshid", "ref_src",
})


def tidy_query(url: URL, *, strip_tracking: bool, sort: bool) -> URL:
    """Drop tracking parameters (utm_*, fbclid, ...) and/or sort the query, so that links
    differing only in those are one page. Off by default: some sites care about order."""
    if not url.raw_query_string:
        return url
    pairs = list(url.query.items())
    if strip_tracking:
        pairs = [(k, v) for k, v in pairs
                 if not (k.lower().startswith("utm_") or k.lower() in TRACKING_PARAMS)]
    if sort:
        pairs.sort()
    return url.with_query(pairs)


def host_key(url: URL) -> str:
    """The politeness key: host and port (one server), like aiohttp's connection key."""
    return f"{url.host}:{url.port}"


JOIN_CACHE_SIZE = 20_000
JOIN_CACHE_CHARS = 300  # longer hrefs (with the base they depend on) are joined uncached
# An absolute URL or a scheme-relative one, with a host: little of the base matters.
_WITH_HOST = re.compile(r"(?:[Hh][Tt][Tt][Pp][Ss]?:)?//[^/?#\\]")
# An absolute path (and query) of unreserved characters only: its canonical form is itself.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9_.~/-]{0,200}(?:\?[A-Za-z0-9_.~=&-]{1,300})?")
_joined: dict[tuple[str, str], str | None] = {}


class Resolver:
    """Resolves the hrefs of one page to canonical URL text, with a cache shared by all pages.

    Links repeat across pages (menus, sidebars, footers), and a join (parse, join,
    canonicalise) costs far more than a lookup. The cache key is the href with the part of
    the base URL its result depends on: nothing for an absolute URL, the origin for "/path",
    the folder for "path" or "../path", the whole base for "?query" or "#fragment".
    """

    def __init__(self, base: URL) -> None:
        self.base = base
        canon = canonical(base)
        if canon is None:  # not crawlable: every href is keyed on the whole base
            self._full = self._folder = self._origin = str(base)
            self._fast = False
            return
        # The canonical spelling ("http://h/", never "http://h"), so the folder is right.
        self._full = str(canon)
        self._folder = self._full.partition("?")[0].rsplit("/", 1)[0]
        self._origin = f"{canon.scheme}://{canon.raw_authority}"
        self._fast = True

    def join(self, href: str) -> str | None:
        """The canonical URL's text, or None if the href cannot be crawled. Text, not a yarl
        URL: on link-heavy pages, building one URL object per link was the crawl's biggest
        single cost, and dedup, scope and robots.txt only need the text."""
        if self._fast and _PLAIN_PATH.fullmatch(href) and "/." not in href \
                and "//" not in href and len(self._origin) + len(href) <= MAX_URL_LENGTH:
            # Already canonical ("/p/12", "/a/b.html"): no parsing, joining or escaping to
            # do, and nothing a cache would save. On link-heavy sites most links look so.
            return self._origin + href
        href = href.strip(_HREF_WHITESPACE)
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
            return _joined[key]
        except KeyError:
            pass
        url = join(self.base, href)
        text = None if url is None else str(url)
        if len(depends) + len(href) > JOIN_CACHE_CHARS:
            return text  # a cache of 2,000-character URLs would take 100 MB; they rarely repeat
        if len(_joined) >= JOIN_CACHE_SIZE:
            _joined.clear()
        _joined[key] = text
        return text

