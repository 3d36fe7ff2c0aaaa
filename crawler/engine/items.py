"""How what a callback (or an errback) yields as items becomes the JSON texts stored: through
the spider's pipelines, if it has any, then its encoder (with its converters, if any)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from crawler.errors import SpiderError
from crawler.model.items import ItemEncoder
from crawler.model.pipelines import PipelineFailed, Pipelines


def _as_is(item: object) -> object:
    return item


class ItemPath:
    """`take(item)` as each is yielded; then `finish(taken)` once the callback is over.

    Without pipelines, `take` encodes at once and `piped` is False: the callback's items
    are stored as taken, on the path of every crawl without pipelines. With pipelines,
    `take` keeps the item as it is, and `finish` runs them, then encodes what they keep."""

    def __init__(self, spider: object) -> None:
        self.pipelines = Pipelines.of(spider)
        self.encode: Callable[[object], str] = ItemEncoder.of(spider)
        self.piped = self.pipelines is not None
        self.take: Callable[[object], Any] = self.encode if not self.piped else _as_is

    async def finish(self, taken: list[Any]) -> tuple[list[str], Counter[str] | None]:
        """The items to store and the dropped ones counted by reason. Raises the pipeline's
        `PipelineFailed`, or the encoder's SpiderError."""
        if self.pipelines is None:
            return taken, None
        kept, dropped = await self.pipelines.process(taken)
        yielded = {id(item) for item in taken}  # alive in `taken`: ids stay theirs
        encode, out = self.encode, []
        for item in kept:
            try:
                out.append(encode(item))
            except SpiderError as exc:
                if id(item) in yielded:
                    raise  # the callback's own item, passed on as it was: its failure
                # What the last pipeline returned cannot be stored: the pipeline's failure.
                raise PipelineFailed(self.pipelines.last, exc) from exc
        return out, dropped

    async def open(self) -> None:
        if self.pipelines is not None:
            await self.pipelines.open()

    async def close(self, *, quiet: bool = False) -> None:
        if self.pipelines is not None:
            await self.pipelines.close(quiet=quiet)
