"""Writing a crawl's items out as JSON Lines or CSV."""

from __future__ import annotations

import csv
import json
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
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    n = 0
    async with aclosing(store.items()) as items:
        async for text in items:
            writer.writerow({k: _cell(v) for k, v in _as_dict(text).items()})
            n += 1
    return n


def _as_dict(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value
