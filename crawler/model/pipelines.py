"""Item pipelines: the spider's `pipelines`, plain objects run in list order on every item.

    class Strip:
        def process(self, item):          # or `async def`
            return {k: v.strip() if isinstance(v, str) else v for k, v in item.items()}

Each `process(item)` returns the item (or a new one) for the next pipeline, or raises
`DropItem(reason)`. `open()` and `close()` (sync or async), when a pipeline has them, are
called once a run: close also when the run stops or fails. The list order is the order; there
are no priorities and no class names in settings.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from crawler.errors import DropItem, SpiderError, message, safe_text

log = logging.getLogger("crawler")

DROPPED = "dropped: "
"""The prefix of the crawl counters that count dropped items, one per reason."""
REASON_CHARS = 100  # a reason is a counter's name: a long one (an item's text) is cut


class PipelineFailed(Exception):
    """A pipeline raised something other than DropItem: the request fails, as it would if
    its callback had raised `error`."""

    def __init__(self, pipeline: str, error: Exception) -> None:
        super().__init__(f"pipeline {pipeline} failed: {message(error)}")
        self.pipeline = pipeline
        self.error = error


@dataclass(frozen=True, slots=True)
class _Step:
    name: str
    process: Callable[[Any], Any]
    pipeline: object


class Pipelines:
    """The spider's pipelines, checked once: `kept, dropped = await pipes.process(items)`."""

    def __init__(self, pipelines: Sequence[object], spider: str) -> None:
        if isinstance(pipelines, str | bytes) or not isinstance(pipelines, Sequence):
            raise SpiderError(f"{spider}.pipelines must be a list of pipeline objects, not "
                              f"{type(pipelines).__name__}")
        self._steps = tuple(_step(p, spider) for p in pipelines)
        self._opened: list[_Step] = []

    @classmethod
    def of(cls, spider: object) -> Pipelines | None:
        """The spider's pipelines, or None when it has none (items then go straight to the
        store, on the path every crawl without pipelines takes)."""
        pipelines = getattr(spider, "pipelines", ())
        made = cls(pipelines, type(spider).__name__)
        return made if made._steps else None

    @property
    def last(self) -> str:
        """The name of the last pipeline: what it returns is what is stored."""
        return self._steps[-1].name

    async def open(self) -> None:
        """Call each pipeline's `open()`, in order. If one fails, those already opened are
        closed, and the run does not start."""
        for step in self._steps:
            try:
                await _call(step.pipeline, "open")
            except Exception as exc:
                await self.close(quiet=True)
                raise SpiderError(f"pipeline {step.name}: open() failed: {message(exc)}") \
                    from exc
            self._opened.append(step)

    async def close(self, *, quiet: bool = False) -> None:
        """Call `close()` on each pipeline opened, last opened first, each even if another
        fails. The first failure is raised after, unless `quiet` (the run is already ending
        with an error of its own, which matters more): then it is only logged."""
        failed: SpiderError | None = None
        while self._opened:
            step = self._opened.pop()
            try:
                await _call(step.pipeline, "close")
            except Exception as exc:
                log.error("pipeline %s: close() failed: %s", step.name, message(exc),
                          exc_info=exc)
                failed = failed or SpiderError(
                    f"pipeline {step.name}: close() failed: {message(exc)}")
        if failed is not None and not quiet:
            raise failed

    async def process(self, items: list[Any]) -> tuple[list[Any], Counter[str] | None]:
        """The items that passed every pipeline (as the last one returned them), and the
        dropped ones counted by their counter name (None if none was dropped). Raises
        `PipelineFailed`."""
        kept: list[Any] = []
        dropped: Counter[str] | None = None
        for yielded in items:
            item = yielded
            for step in self._steps:
                try:
                    out = step.process(item)
                    if inspect.isawaitable(out):
                        out = await out
                except DropItem as exc:
                    dropped = dropped if dropped is not None else Counter()
                    dropped[_counter(exc, step.name)] += 1
                    break
                except Exception as exc:
                    raise PipelineFailed(step.name, exc) from exc
                if out is None:  # a forgotten `return item`: dropping it silently would hide it
                    raise PipelineFailed(step.name, SpiderError(
                        f"{step.name}.process() returned None; return the item (or a new "
                        "one), or raise DropItem(reason) to leave it out"))
                item = out
            else:
                kept.append(item)
        return kept, dropped


def _step(pipeline: object, spider: str) -> _Step:
    if isinstance(pipeline, type):
        raise SpiderError(f"{spider}.pipelines holds the class {pipeline.__name__}; give an "
                          f"instance: {pipeline.__name__}()")
    name = type(pipeline).__name__
    process = getattr(pipeline, "process", None)
    if not callable(process):
        raise SpiderError(f"{spider}.pipelines: {name} has no process(item) method")
    for optional in ("open", "close"):
        if getattr(pipeline, optional, None) is not None \
                and not callable(getattr(pipeline, optional)):
            raise SpiderError(f"{spider}.pipelines: {name}.{optional} is not a method")
    return _Step(name, process, pipeline)


async def _call(pipeline: object, method: str) -> None:
    called = getattr(pipeline, method, None)
    if called is not None:
        out = called()
        if inspect.isawaitable(out):
            await out


def _counter(exc: DropItem, pipeline: str) -> str:
    reason = " ".join(exc.reason.split()) or f"by {pipeline}"
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    return DROPPED + safe_text(reason)
