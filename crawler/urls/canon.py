"""Canonical URLs: the one form a URL is deduplicated, scoped and stored under.

`CanonicalURL` is that form's text, and the one type the crawl carries a URL in, from a
start URL or a link to a stored row: a request's key, admission's dedup, scope and
robots.txt checks, a queued job, what the store keeps and gives back, redirect targets.
Its origin is a slice of it (`crawler.urls.origin.origin_of`).

Who may make one: the canonicalising functions of this module (`canonical`,
`parse_absolute`, `join`, `tidy_query`), `crawler.urls.resolve.Resolver` (whose fast path
returns text already canonical), and the engine's intake, which trusts the URL of a leased
request because the store only holds keys the crawl gave it. Anything else is plain `str`.
`storage` knows nothing of this type: its signatures say `str`, which a CanonicalURL is.
A yarl `URL` is a parsed view of a CanonicalURL (`parsed`), made where something needs the
parts (the fetcher's request, a page's base for joining links), never turned back to text.
"""

from __future__ import annotations

import re
from typing import NewType

from yarl import URL

CanonicalURL = NewType("CanonicalURL", str)

HTTP_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2048
# The HTML spec strips ASCII whitespace around an href before parsing it.
HREF_WHITESPACE = " \t\n\r\f"
# A DNS name (labels of letters, digits, '-' and '_', as IDNA-encoded by yarl) or an IP.
_VALID_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|[0-9a-f:.]+")


def canonical(url: URL) -> CanonicalURL | None:
    """The canonical text of an absolute URL, or None if it is not a crawlable http(s) URL.
    Its length is not checked (`parse_absolute` and `join` refuse over-long ones)."""
    canon = _canonical(url)
    return None if canon is None else CanonicalURL(str(canon))


def parsed(key: CanonicalURL) -> URL:
    """A canonical URL's parsed view: already encoded, so yarl need not encode it again."""
    return URL(key, encoded=True)


def _canonical(url: URL) -> URL | None:
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
    """yarl's URL for text, and whether lone "%" signs were masked (see `_text`): never
    when the text, or the base it will be joined to, holds the mark's escape already."""
    if "%" in text and _LONE_PERCENT.search(text) and _MARK not in text \
            and _MARK_ESCAPED not in text.upper() and _MARK_ESCAPED not in base.upper():
        return URL(_LONE_PERCENT.sub(_MARK, text)), True
    return URL(text), False


def _text(canon: URL, masked: bool) -> str:
    """A canonical URL's text, with the lone "%" signs `_parse` masked put back."""
    text = str(canon)
    return text.replace(_MARK_ESCAPED, "%") if masked else text


def parse_absolute(text: str) -> CanonicalURL:
    """The canonical URL of a URL a user typed (a start URL). Raises ValueError with a
    readable message."""
    try:
        url, masked = _parse(text.strip(HREF_WHITESPACE))
        canon = _canonical(url)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed URL {text!r}: {exc}") from None
    if canon is None:
        raise ValueError(f"not an absolute http(s) URL with a valid host: {text!r}")
    key = _text(canon, masked)
    if len(key) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters: {text[:80]!r}...")
    return CanonicalURL(key)


def join(base: URL, href: str) -> CanonicalURL | None:
    """The canonical URL an href points to from a base URL; None for malformed, non-http
    or over-long ones."""
    href = href.strip(HREF_WHITESPACE)
    if len(href) > MAX_URL_LENGTH:
        return None
    try:
        url, masked = _parse(href, str(base))
        canon = _canonical(base.join(url))
    except (ValueError, TypeError, UnicodeError):
        return None
    if canon is None:
        return None
    key = _text(canon, masked)
    return None if len(key) > MAX_URL_LENGTH else CanonicalURL(key)


TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "mc_cid", "mc_eid",
    "_ga", "_gl", "igshid", "ref_src",
})


def tidy_query(key: CanonicalURL, *, strip_tracking: bool, sort: bool) -> CanonicalURL:
    """Drop tracking parameters (utm_*, fbclid, ...) and/or sort the query, so that links
    differing only in those are one page. Off by default: some sites care about order."""
    if "?" not in key:
        return key
    url = parsed(key)
    if not url.raw_query_string:
        return key
    pairs = list(url.query.items())
    if strip_tracking:
        pairs = [(k, v) for k, v in pairs
                 if not (k.lower().startswith("utm_") or k.lower() in TRACKING_PARAMS)]
    if sort:
        pairs.sort()
    return CanonicalURL(str(url.with_query(pairs)))


def host_key(url: URL) -> str:
    """The politeness key: host and port (one server), like aiohttp's connection key."""
    return f"{url.host}:{url.port}"
