"""Which character encoding a page is in: BOM, then HTTP header, then <meta>, then UTF-8."""

from __future__ import annotations

import codecs
import re

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_META = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]+)""", re.IGNORECASE
)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
# Labels that browsers (WHATWG Encoding) read as windows-1252, a superset of latin-1.
_WINDOWS_1252 = frozenset({"latin-1", "latin1", "iso-8859-1", "iso8859-1", "l1", "us-ascii",
                           "ascii", "cp819", "windows-1252", "cp1252", "iso_8859-1"})
PRESCAN_BYTES = 1024


def normalise(label: str | None) -> str | None:
    """A Python codec name for an encoding label, or None if it is unknown."""
    if not label:
        return None
    label = label.strip().lower()
    if label in _WINDOWS_1252:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = _HEADER_CHARSET.search(content_type)
    return normalise(match.group(1)) if match else None


def detect(body: bytes, content_type: str | None) -> tuple[str, int]:
    """The encoding to decode `body` with, and how many leading BOM bytes to skip."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, len(bom)
    declared = header_charset(content_type)
    if declared:
        return declared, 0
    match = _META.search(body, 0, PRESCAN_BYTES)
    if match:
        meta = normalise(match.group(1).decode("ascii", "replace"))
        # A page cannot be UTF-16 if its <meta> was readable as ASCII.
        if meta and not meta.startswith("utf-16"):
            return meta, 0
    return "utf-8", 0


def decode(body: bytes, content_type: str | None) -> str:
    name, skip = detect(body, content_type)
    return body[skip:].decode(name, errors="replace")
