"""`crawl export`: writing a crawl's items out as JSON Lines or CSV."""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, TextIO

from crawler.cli import running
from crawler.cli.exits import EXIT_OK
from crawler.engine.state import open_state
from crawler.errors import ConfigError
from crawler.observe import logs
from storage import Store

FORMATS = ("jsonl", "csv")

status_log = logging.getLogger(logs.STATUS)


def command(args: argparse.Namespace) -> int:
    """`crawl export STATE`: the items to stdout or to a file."""
    return running.run(_export(args), "asyncio")


async def _export(args: argparse.Namespace) -> int:
    store = await open_state(args.state, readonly=True)
    try:
        if args.output is None:
            n = await export(store, args.format, sys.stdout)
        else:
            n = await _export_to_file(store, args.format, Path(args.output))
    finally:
        await store.close()
    status_log.info("exported %s items", f"{n:,}", extra={"event": "export", "items": n})
    return EXIT_OK


async def _export_to_file(store: Store, fmt: str, path: Path) -> int:
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: the folder {path.parent} does not exist")
    # Written aside and renamed: an export cut short never leaves a half file in place. The
    # partial file has one name, truncated on open: the export that follows a killed one
    # writes over its leftover instead of adding another.
    tmp = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o666)
    except OSError as exc:  # a read-only folder, no permission: say so of the output
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another export is writing {path} (its partial file {tmp} is "
                              "in use); wait for it to finish") from None
        if not _still_named(fd, tmp):
            # Opened just before another export renamed it into place: that is its output.
            raise ConfigError(f"another export has just written {path}; run this one again "
                              "to write it anew")
        os.ftruncate(fd, 0)  # only now: truncating before the lock would cut another's file
        try:
            n = await export(store, fmt, out)
            out.flush()
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return n


def _still_named(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the one at `path`."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)


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
