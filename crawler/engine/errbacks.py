"""A request's errback: called once when the request fails for good (after its retries),
with a `RequestFailure`. What it yields (items, requests) is stored with the failure, in the
same all-or-nothing outcome."""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

from crawler.engine.callbacks import Yielded, _where
from crawler.engine.items import ItemPath
from crawler.engine.outcomes import Outcomes
from crawler.errors import FailureKind, describe, message
from crawler.model import specs
from crawler.model.pipelines import PipelineFailed
from crawler.model.specs import RequestFailure
from crawler.model.spider import Spider
from crawler.observe.metrics import Metrics
from crawler.policy.admission import Admission, Skip
from storage import Failure, LeasedRequest

log = logging.getLogger("crawler")

# Failures of the spider's own code, not of the request: its errback is not called for them.
_NOT_THE_REQUESTS = frozenset({FailureKind.CALLBACK, FailureKind.SPIDER, FailureKind.INTERNAL,
                               FailureKind.STORE, FailureKind.PIPELINE})

_KINDS = frozenset(FailureKind)


class Errbacks:
    def __init__(self, spider: Spider, outcomes: Outcomes, admission: Admission,
                 metrics: Metrics, *, max_links: int, items: ItemPath | None = None) -> None:
        self._spider = spider
        self._items = items if items is not None else ItemPath(spider)
        self._outcomes = outcomes
        self._admission = admission
        self._metrics = metrics
        self._max_links = max_links

    async def settle(self, failure: Failure) -> Failure:
        """The failure, with what the request's errback (if any) made of it. Every failure
        passes here on its way to the store (the claim window's `settle`), whatever path
        failed it: the fetch, a host found down, robots.txt."""
        lease = self._outcomes.failed_with_spec.pop(failure.request_id, None)
        if lease is None:
            return failure
        return await self._call(lease, failure)

    async def _call(self, lease: LeasedRequest, failure: Failure) -> Failure:
        name = specs.decode(lease.spec).errback
        if name is None or failure.kind in _NOT_THE_REQUESTS:
            return failure
        method = getattr(self._spider, name, None)
        kind = failure.kind if failure.kind in _KINDS else FailureKind.FETCH
        about = RequestFailure(lease.url, FailureKind(kind), failure.error, failure.status)
        got = Yielded()
        try:
            if method is None:
                raise AttributeError(f"{type(self._spider).__name__} has no method {name!r}")
            async for value in _values(method(about)):
                got.take(value, self._max_links, self._items.take)
            await got.finish(self._items)  # the errback's items pass the pipelines too
        except PipelineFailed as failed:
            where = _where(failed.error)
            log.error("%s on %s (errback %s)%s", failed, lease.url, name, where,
                      extra={"url": lease.url, "reason": f"pipeline: {failed}{where}"})
            return Failure(failure.request_id, failure.kind,
                           f"{failure.error}; {failed}{where}", failure.status)
        except Exception as exc:
            where = _where(exc)
            log.error("errback %s failed on %s: %s%s", name, lease.url, describe(exc), where,
                      extra={"url": lease.url, "reason": f"errback: {describe(exc)}{where}"})
            return Failure(failure.request_id, failure.kind,
                           f"{failure.error}; errback {name} failed: {message(exc)}{where}",
                           failure.status)
        items, found = got.items, got.requests
        counters: Counter[str] = Counter()
        if got.over:
            counters[Skip.LINK_LIMIT] += got.over
        if got.dropped:
            counters.update(got.dropped)
        depth = lease.depth + 1
        admitted = list(self._admission.admit(found, depth, lease.id, counters).items())
        self._metrics.items += len(items)
        if self._admission.too_deep(depth):
            return Failure(failure.request_id, failure.kind, failure.error, failure.status,
                           items, (), counters, [new for _, new in admitted])
        self._admission.remember([key for key, _ in admitted])
        return Failure(failure.request_id, failure.kind, failure.error, failure.status,
                       items, [new for _, new in admitted], counters)


async def _values(made: Any) -> AsyncIterator[Any]:
    """What an errback yields, async generator or not (a list, or None, too)."""
    if inspect.isasyncgen(made):
        async for value in made:
            yield value
    elif isinstance(made, Iterator | list | tuple):
        for value in made:
            yield value
    elif made is not None:
        yield made
