"""Feeds: the items written out while crawling (`output`, `-o FILE`), each committed item
exactly once, in commit order, across kill -9 and resume; in the formats `crawl export`
writes, byte for byte."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Protocol, TextIO

from crawler.config import CrawlConfig
from crawler.errors import ConfigError
from crawler.feeds.files import FileFeed
from crawler.feeds.formats import STDOUT, output_format
from crawler.feeds.stream import StreamFeed
from storage import FeedMark, Store


class Feed(Protocol):
    async def open(self, marks: dict[str, FeedMark]) -> None: ...

    async def catch_up(self) -> None: ...

    async def finish(self) -> None: ...

    def close(self) -> None: ...


def check(config: CrawlConfig) -> None:
    """Refuse, before anything is crawled, outputs that cannot be written: a format it
    cannot tell, a missing folder, one file named twice."""
    seen: set[str] = set()
    for target in config.output:
        output_format(target, config.output_format)
        key = target if target == STDOUT else os.path.abspath(target)
        if key in seen:
            raise ConfigError(f"output {target} is given twice")
        seen.add(key)
        folder = Path(key).parent
        if target != STDOUT and not folder.is_dir():
            raise ConfigError(f"output {target}: the folder {folder} does not exist")


class Feeds:
    """The crawl's feeds: `open()` once the crawl is open, `catch_up()` after commits,
    `finish()` after the last one, `close()` at the end."""

    def __init__(self, store: Store, config: CrawlConfig, stdout: TextIO | None = None) -> None:
        check(config)
        if config.output and store.shared:
            # A feed's mark is the crawl's, and the crawl is every process's: whose file
            # would it be, on which machine? One export of the whole crawl says it plainly.
            raise ConfigError("-o/output is not offered on a crawl several processes share: "
                              "run `crawl export` of it (or iter_items), during or after")
        self._store = store
        self._feeds: list[Feed] = [
            StreamFeed(store, output_format(target, config.output_format), stdout or sys.stdout)
            if target == STDOUT else
            FileFeed(store, target, output_format(target, config.output_format))
            for target in config.output]

    async def open(self) -> None:
        if not self._feeds:
            return
        marks = await self._store.feed_marks()
        for feed in self._feeds:
            await feed.open(marks)
        await self._store.flush()  # the marks of files written anew, at once

    async def catch_up(self) -> None:
        for feed in self._feeds:
            await feed.catch_up()

    async def finish(self) -> None:
        for feed in self._feeds:
            await feed.finish()

    def close(self) -> None:
        for feed in self._feeds:
            feed.close()


__all__ = ["Feeds", "check"]
