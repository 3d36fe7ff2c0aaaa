"""Reading the committed items in batches, in commit order, and writing them through an
encoder: what a feed is rebuilt from, and what `crawl export` writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from crawler.feeds.formats import Encoder
from storage import Store

BATCH = 2_000  # items a read: a few hundred kB of text, one query


async def batches(store: Store, after: int = 0,
                  upto: int | None = None) -> AsyncIterator[list[tuple[int, str]]]:
    """The committed items after position `after` (and up to `upto`), a batch at a time."""
    while upto is None or after < upto:
        batch = await store.items_after(after, BATCH)
        if upto is not None and batch and batch[-1][0] > upto:
            batch = [(position, text) for position, text in batch if position <= upto]
        if not batch:
            return
        yield batch
        after = batch[-1][0]


async def write_body(store: Store, encoder: Encoder, write: Callable[[str], object],
                     upto: int | None = None) -> tuple[int, int]:
    """Write the head and the rows of the items committed (up to `upto`); returns how many
    items were written and the position of the last. An encoder whose head needs every
    item's fields (CSV) reads them first, unless `upto` is given: then it has them."""
    if upto is None and encoder.needs_columns:
        upto = 0
        async for batch in batches(store):
            encoder.widen([text for _, text in batch])
            upto = batch[-1][0]
    write(encoder.head())
    n = last = 0
    async for batch in batches(store, 0, upto):
        write(encoder.rows([text for _, text in batch], n == 0))
        n += len(batch)
        last = batch[-1][0]
    return n, last


async def write_all(store: Store, encoder: Encoder, write: Callable[[str], object]) -> int:
    """Write every committed item, head to tail; returns how many."""
    n, _ = await write_body(store, encoder, write)
    write(encoder.tail(n == 0))
    return n
