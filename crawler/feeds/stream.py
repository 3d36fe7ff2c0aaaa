"""`-o -`: the items on the standard output as they are committed.

A pipe cannot be cut back or rewritten, so the output starts with the items earlier runs
committed, then this run's, as they are committed: at the end it holds what `crawl export`
would write. CSV needs every item's fields before its header, so a CSV output is written
whole when the run ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

from crawler.feeds.formats import encoder
from crawler.feeds.reading import batches, write_all
from storage import FeedMark, Store


class StreamFeed:
    def __init__(self, store: Store, fmt: str, out: TextIO) -> None:
        self._store = store
        self._encoder = encoder(fmt)
        self._out = out
        self._position = 0  # of the last item written
        self._written = 0

    async def open(self, marks: Mapping[str, FeedMark]) -> None:
        if not self._encoder.needs_columns:
            self._out.write(self._encoder.head())

    async def catch_up(self) -> None:
        if self._encoder.needs_columns:
            return
        async for batch in batches(self._store, self._position):
            self._out.write(self._encoder.rows([text for _, text in batch],
                                               self._written == 0))
            self._written += len(batch)
            self._position = batch[-1][0]
        self._out.flush()

    async def finish(self) -> None:
        """Called once the run's last commit is made."""
        if self._encoder.needs_columns:
            await write_all(self._store, self._encoder, self._out.write)
        else:
            await self.catch_up()
            self._out.write(self._encoder.tail(self._written == 0))
        self._out.flush()

    def close(self) -> None:
        """The standard output stays open: others may write to it after the crawl."""
