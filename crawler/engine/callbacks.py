"""Running a spider's callback on a response: what it yields (items, requests), or why it
failed. The event loop is watched meanwhile: a callback that blocks it is named."""

from __future__ import annotations

import inspect
import json
import logging
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from crawler.engine.loopwatch import BLOCKING, LoopWatch
from crawler.engine.outcomes import Outcomes
from crawler.errors import FailureKind, describe, message
from crawler.model.items import encode_item
from crawler.model.request import Request
from crawler.model.response import Response
from crawler.model.spider import Spider
from storage import Failure, LeasedRequest

log = logging.getLogger("crawler")


@dataclass(frozen=True, slots=True)
class Yielded:
    """What a callback yielded: items as JSON text, the requests kept (up to `max_links`)
    and how many more it yielded past that cap."""

    items: list[str]
    requests: list[Request]
    over: int


class Callbacks:
    def __init__(self, spider: Spider, outcomes: Outcomes, watch: LoopWatch, *,
                 max_links: int, clock: Callable[[], float]) -> None:
        self._spider = spider
        self._outcomes = outcomes
        self._watch = watch
        self._max_links = max_links
        self._clock = clock

    async def run(self, lease: LeasedRequest, response: Response) -> Yielded | Failure:
        name = lease.callback or "parse"
        method = getattr(self._spider, name, None)
        if method is None or not inspect.isasyncgenfunction(method):
            return self._outcomes.fail(lease, FailureKind.SPIDER,
                                       f"{type(self._spider).__name__} has no async "
                                       f"generator callback named {name!r}", response.status)
        kwargs = json.loads(lease.cb_kwargs) if lease.cb_kwargs else {}
        found: list[Request] = []
        cap, over = self._max_links, 0  # requests past the cap: counted, not kept
        items: list[str] = []
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
                    items.append(encode_item(value))  # raises the SpiderError that explains
        except Exception as exc:
            where = _where(exc)
            log.error("callback %s failed on %s: %s%s", name, lease.url, describe(exc), where,
                      extra={"url": lease.url, "reason": f"callback: {describe(exc)}{where}"})
            return self._outcomes.fail(lease, FailureKind.CALLBACK, f"{message(exc)}{where}",
                                       response.status)
        self._watch.callback_step(name, lease.url, step, clock())
        return Yielded(items, found, over)


_LIBRARY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # crawler/


def _where(exc: BaseException) -> str:
    """The spider's own line that raised: the last frame outside the crawler package (an
    error that Request(...) raises names the spider's line that made the request)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    own = [f for f in frames if not os.path.abspath(f.filename).startswith(_LIBRARY + os.sep)]
    last = own[-1] if own else frames[-1]
    return f" (at {last.filename}:{last.lineno} in {last.name})"
