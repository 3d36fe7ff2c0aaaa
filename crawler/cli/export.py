"""Writing a crawl's items out as JSON Lines or CSV."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, TextIO

from storage import Store

FORMATS = ("jsonl", "csv")


async def export(store: Store, fmt: str, out: TextIO) -> int:
    """Write every item to `out`; returns how many were written."""
    if fmt == "jsonl":
        async with aclosing(store.items()) as items:
            return await _jsonl(items, out)
    if fmt == "csv":
        return await _csv(store, out)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


async def _jsonl(items: AsyncIterator[str], out: TextIO) -> int:
    n = 0
    async for text in items:  # stored as compact JSON already: no re-encoding
        out.write(text)
        out.write("\n")
        n += 1
    return n


async def _csv(store: Store, out: TextIO) -> int:
    # Two passes: the columns are every field any item has, in first-seen order.
    columns: dict[str, None] = {}
    async with aclosing(store.items()) as items:
        async for text in items:
            columns.update(dict.fromkeys(_as_dict(text)))
    # RFC 4180's CRLF: with "\n" alone, the csv module leaves a field holding a lone "\r"
    # unquoted, and readers end the row there.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_cell(name) for name in columns])  # field names come from the site too
    n = 0
    async with aclosing(store.items()) as items:
        async for text in items:
            item = _as_dict(text)
            writer.writerow([_cell(item.get(name)) for name in columns])
            n += 1
    return n


def _as_dict(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV
# Injection"); the text of a crawled page must never do that.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _cell(value: Any) -> Any:
    """A CSV cell: nested values as JSON, text that a spreadsheet would take for a formula
    behind a single quote (as OWASP recommends). Numbers, and text that is just a number
    such as "-5", are left as they are: a spreadsheet reads them as numbers, nothing more."""
    if value is None or isinstance(value, int | float):
        return value
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
