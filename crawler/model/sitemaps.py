"""Sitemaps (sitemaps.org): urlsets and sitemap indexes, plain or gzipped, read with bounds."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from crawler.urls import canon as urls

MAX_BYTES = 50 * 1024 * 1024  # the protocol's limit, uncompressed: also caps a gzip bomb
MAX_ENTRIES = 50_000  # the protocol's limit per file
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Sitemap:
    pages: list[str]  # <urlset><url><loc>
    sitemaps: list[str]  # <sitemapindex><sitemap><loc>


def decompress(body: bytes, limit: int = MAX_BYTES) -> bytes:
    """The sitemap's bytes, un-gzipped if they are gzip; ValueError past `limit`."""
    if not body.startswith(_GZIP_MAGIC):
        return body
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"broken gzip: {exc}") from None
    if len(data) > limit:
        raise ValueError(f"sitemap is over {limit} bytes uncompressed")
    return data


def parse(body: bytes, base: URL) -> Sitemap:
    """Canonical page and sitemap URLs listed in a sitemap; malformed entries are dropped.

    selectolax reads the XML leniently (real sitemaps are often not well-formed) and never
    expands entities, so hostile XML cannot blow up.
    """
    tree = LexborHTMLParser(decompress(body).decode("utf-8", errors="replace"))
    return Sitemap(_locs(tree, "url > loc", base), _locs(tree, "sitemap > loc", base))


def _cdata(inner: str) -> str:
    """The text of a <![CDATA[...]]> entry, which an HTML parser keeps as a comment."""
    inner = inner.strip()
    if inner.startswith("<!--[CDATA[") and inner.endswith("]]-->"):
        return inner[len("<!--[CDATA[") : -len("]]-->")].strip()
    return ""


def _locs(tree: LexborHTMLParser, selector: str, base: URL) -> list[str]:
    found: dict[str, None] = {}
    for node in tree.css(selector):
        text = node.text(strip=True) or _cdata(node.inner_html or "")
        url = urls.join(base, text) if text else None  # "" would be the sitemap itself
        if url is not None:
            found[url] = None
            if len(found) >= MAX_ENTRIES:
                break
    return list(found)
