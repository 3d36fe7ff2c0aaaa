"""`crawl export`: writing a crawl's items out as JSON Lines, a JSON array or CSV."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from crawler.cli import running
from crawler.cli.exits import EXIT_OK
from crawler.engine.state import open_state
from crawler.errors import ConfigError
from crawler.feeds.formats import FORMATS, encoder
from crawler.feeds.reading import write_all
from crawler.observe import logs
from storage import Store

__all__ = ["FORMATS", "command", "export"]

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
    """Write every item to `out`; returns how many were written. The encoders are the
    feeds' (crawler/feeds/formats.py): a feed and an export are the same bytes."""
    return await write_all(store, encoder(fmt), out.write)
