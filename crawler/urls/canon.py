"""Canonical URLs: the one form a URL is deduplicated, scoped and stored under."""

from __future__ import annotations

import re

from yarl import URL

HTTP_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2048
# The HTML spec strips ASCII whitespace around an href before parsing it.
HREF_WHITESPACE = " \t\n\r\f"
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
        parsed, masked = _parse(text.strip(HREF_WHITESPACE))
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
    href = href.strip(HREF_WHITESPACE)
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
