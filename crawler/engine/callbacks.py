"""Running a spider's callback on a response: what it yields (items, requests), or why it
failed. The event loop is watched meanwhile: a callback that blocks it is named."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from crawler.engine.items import ItemPath
from crawler.engine.loopwatch import BLOCKING, LoopWatch
from crawler.engine.outcomes import Outcomes
from crawler.errors import FailureKind, SpiderError, describe, message
from crawler.model.callshape import Shape, returned_wrong, shape_of
from crawler.model.callsite import in_library
from crawler.model.pipelines import PipelineFailed
from crawler.model.request import Request
from crawler.model.response import Response
from crawler.model.spider import Spider
from storage import Failure, LeasedRequest

log = logging.getLogger("crawler")

SLICE = 0.02  # seconds a `def` generator may hold the loop before the loop gets a turn


@dataclass(slots=True)
class Yielded:
    """What a callback (or an errback) yielded: items as JSON text, the requests kept (up to
    `max_links`), how many more it yielded past that cap, and the items pipelines dropped
    (counted by their counter's name)."""

    items: list[Any] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    over: int = 0
    dropped: Counter[str] | None = None

    def take(self, value: object, cap: int, keep: Callable[[object], Any]) -> None:
        """One yielded value: a request (kept up to `cap`, then counted), an item (as `keep`
        makes it: encoded, or the SpiderError that explains why not), or None (nothing)."""
        if isinstance(value, Request):
            if len(self.requests) < cap:
                self.requests.append(value)
            else:
                self.over += 1
        elif value is not None:
            self.items.append(keep(value))

    async def finish(self, path: ItemPath) -> None:
        """Items taken as they came go through the pipelines, and are encoded."""
        if path.piped:
            self.items, self.dropped = await path.finish(self.items)


class Callbacks:
    def __init__(self, spider: Spider, outcomes: Outcomes, watch: LoopWatch, *,
                 max_links: int, clock: Callable[[], float],
                 items: ItemPath | None = None) -> None:
        self._spider = spider
        self._items = items if items is not None else ItemPath(spider)
        self._outcomes = outcomes
        self._watch = watch
        self._max_links = max_links
        self._clock = clock
        self._shapes: dict[str, Shape] = {}  # by callback name, once checked

    def _shape(self, name: str, method: Any) -> Shape | str:
        """The callback's shape (remembered), or why it cannot be called."""
        if method is None:
            return f"{type(self._spider).__name__} has no callback named {name!r}"
        try:
            shape = shape_of(method)
        except SpiderError as exc:
            return str(exc)
        self._shapes[name] = shape
        return shape

    async def run(self, lease: LeasedRequest, response: Response) -> Yielded | Failure:
        name = lease.callback or "parse"
        method: Any = getattr(self._spider, name, None)
        shape: Shape | str | None = self._shapes.get(name)
        if shape is None:
            shape = self._shape(name, method)
            if isinstance(shape, str):
                return self._outcomes.fail(lease, FailureKind.SPIDER, shape, response.status)
        kwargs = json.loads(lease.cb_kwargs) if lease.cb_kwargs else {}
        if shape is not Shape.ASYNC_GENERATOR:  # the other shapes, off the hot path
            return await self._run_other(name, method, lease, response, kwargs)
        found: list[Request] = []
        cap, over = self._max_links, 0  # requests past the cap: counted, not kept
        items: list[Any] = []
        take = self._items.take  # encodes; or, with pipelines, keeps the item for them
        clock = self._clock
        step = clock()  # when the callback was last resumed: a long step may block the loop
        try:
            async for value in method(response, **kwargs):
                now = clock()
                if now - step > BLOCKING:
                    self._watch.callback_step(name, lease.url, step, now)
                step = now
                if isinstance(value, Request):
                    if len(found) < cap:
                        found.append(value)
                    else:
                        over += 1
                elif value is not None:
                    items.append(take(value))  # raises the SpiderError that explains
        except Exception as exc:
            return self._failed(name, lease, response, exc)
        self._watch.callback_step(name, lease.url, step, clock())
        got = Yielded(items, found, over)
        if self._items.piped:
            return await self._piped(name, lease, response, got)
        return got

    async def _run_other(self, name: str, method: Any, lease: LeasedRequest,
                         response: Response, kwargs: dict[str, Any]) -> Yielded | Failure:
        """A `def` generator, or a function returning a list or None."""
        shape = self._shapes[name]
        clock, watch = self._clock, self._watch
        start = clock()
        try:
            if shape is Shape.GENERATOR:
                values: Any = await _drain(method(response, **kwargs), name, lease.url,
                                           watch, clock)
            else:
                values = method(response, **kwargs)
                if shape is Shape.COROUTINE:
                    values = await values
                watch.callback_step(name, lease.url, start, clock())
                if values is None:
                    values = []
                elif not isinstance(values, list):
                    why = returned_wrong(name, method, values)
                    log.error("%s (on %s)", why, lease.url,
                              extra={"url": lease.url, "reason": f"callback: {why}"})
                    return self._outcomes.fail(lease, FailureKind.CALLBACK, why,
                                               response.status)
            got = Yielded()
            for value in values:
                got.take(value, self._max_links, self._items.take)
        except Exception as exc:
            return self._failed(name, lease, response, exc)
        if self._items.piped:
            return await self._piped(name, lease, response, got)
        return got

    async def _piped(self, name: str, lease: LeasedRequest, response: Response,
                     got: Yielded) -> Yielded | Failure:
        """The callback's items through the spider's pipelines: a pipeline that raises fails
        the request as a raising callback does, none of its items or requests stored."""
        try:
            await got.finish(self._items)
        except PipelineFailed as failed:
            exc, where = failed.error, _where(failed.error)
            log.error("%s on %s%s", failed, lease.url, where,
                      extra={"url": lease.url, "reason": f"pipeline: {failed}{where}"})
            return self._outcomes.fail(lease, FailureKind.PIPELINE,
                                       f"{failed.pipeline}: {message(exc)}{where}",
                                       response.status)
        except Exception as exc:  # an item the encoder refused, after the pipelines
            return self._failed(name, lease, response, exc)
        return got

    def _failed(self, name: str, lease: LeasedRequest, response: Response,
                exc: Exception) -> Failure:
        where = _where(exc)
        log.error("callback %s failed on %s: %s%s", name, lease.url, describe(exc), where,
                  extra={"url": lease.url, "reason": f"callback: {describe(exc)}{where}"})
        return self._outcomes.fail(lease, FailureKind.CALLBACK, f"{message(exc)}{where}",
                                   response.status)


async def _drain(values: Iterator[Any], name: str, url: str, watch: LoopWatch,
                 clock: Callable[[], float]) -> list[Any]:
    """What a `def` generator yields. It never gives the event loop a turn by itself, so it
    is given one whenever it has held the loop for a slice: a generator whose steps are short
    does not block the crawl, and one whose step alone holds it too long is named."""
    out: list[Any] = []
    held = clock()  # since when the loop has been held
    for value in values:
        out.append(value)
        now = clock()
        if now - held > SLICE:
            watch.callback_step(name, url, held, now)
            await asyncio.sleep(0)
            held = clock()
    watch.callback_step(name, url, held, clock())
    return out




def _where(exc: BaseException) -> str:
    """Where the callback failed: the innermost frame outside the crawler package (the
    spider's line that called it wrongly, not the library's line that said so)."""
    frames = traceback.extract_tb(exc.__traceback__)
    last = next((f for f in reversed(frames) if not in_library(f.filename)), None)
    if last is None:
        return ""
    at = f" (at {last.filename}:{last.lineno})"
    if isinstance(exc, SpiderError) and exc.args == (str(exc),) and str(exc).endswith(at):
        exc.args = (str(exc)[: -len(at)],)  # the model's (callsite): said once, as below
    elif at[1:] in str(exc):
        return ""  # the error already says where
    return f" (at {last.filename}:{last.lineno} in {last.name})"
