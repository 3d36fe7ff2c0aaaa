"""Origins: a scheme, a host and a port, the unit robots.txt applies to.

`Origin` has one spelling, the canonical URL's own start: "http://h" (no default port),
"http://h:8080", "https://[::1]:8443". So the origin of a canonical URL's text is a slice
of it (`origin_of`, asked of every link), and the origin of a parsed URL (`origin`) is the
same text.
"""

from __future__ import annotations

from typing import NewType

from yarl import URL

from crawler.urls.canon import CanonicalURL

Origin = NewType("Origin", str)


def origin_of(key: CanonicalURL) -> Origin | None:
    """The origin of a canonical URL's text, found without parsing: a canonical URL always
    has a path, and its authority never holds a "/". None for text with no path, which no
    canonical URL is."""
    cut = key.find("/", 8)  # past "https://", or the first character of http's host
    return None if cut < 0 else Origin(key[:cut])


def origin(url: URL) -> Origin:
    """The origin of an absolute http(s) URL, spelt as its canonical form starts."""
    if url.raw_user is not None or url.raw_password is not None:
        url = url.with_user(None)
    if url.explicit_port is not None and url.is_default_port():
        url = url.with_port(None)
    return Origin(f"{url.scheme}://{url.raw_authority}")
