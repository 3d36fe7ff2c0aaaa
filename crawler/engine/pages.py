"""One request, from fetch to outcome: the fetch (and what it tells of the host's health and
load), then the response as one `Outcome`: a redirect is a new request at the same depth,
a 2xx page goes through the spider's callback, whose requests pass admission."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from multidict import CIMultiDictProxy

from crawler.config import CrawlConfig
from crawler.engine.budget import ByteBudget
from crawler.engine.callbacks import Callbacks
from crawler.engine.fetch import HostSend, MeteredFetch
from crawler.engine.jobs import Job, Work
from crawler.engine.outcomes import Outcomes
from crawler.engine.robotstxt import RobotsCoordinator
from crawler.engine.window import ClaimWindow
from crawler.errors import (
    RETRYABLE_STATUSES,
    ConnectError,
    FailureKind,
    FetchError,
    HTTPStatusError,
    TooManyRedirects,
    describe,
    message,
)
from crawler.http.transport import FetchResult, Sending, WantBody
from crawler.model import specs
from crawler.model.request import Request
from crawler.model.response import Response, is_html_type
from crawler.model.specs import RequestExtra, Spec
from crawler.observe.metrics import Metrics
from crawler.policy.admission import Admission, Skip
from crawler.policy.frontier import Frontier
from crawler.policy.retry import HostHealth, retry_after
from crawler.urls import canon as urls
from crawler.urls.resolve import JoinCache
from storage import Completion, Failure, LeasedRequest, NewRequest, Outcome

log = logging.getLogger("crawler")

FEW_HOSTS = 8  # up to this many hosts in play, keep-alive is never given up
PARSE_IN_THREAD = 64 * 1024  # bytes of HTML above which parsing leaves the event loop
TREE_BUDGET = 8 * 1024 * 1024  # bytes of such HTML held as parsed trees at once (see budget)


class PageProcessor:
    """`outcome = await pages.process(job)`: fetch one leased request and turn what came
    back (an answer or a failure) into the one outcome the store records."""

    def __init__(self, config: CrawlConfig, fetch: MeteredFetch, window: ClaimWindow, *,
                 frontier: Frontier[Work], health: HostHealth, robots: RobotsCoordinator,
                 admission: Admission, callbacks: Callbacks, outcomes: Outcomes,
                 html_only: bool, metrics: Metrics, wall_clock: Callable[[], float],
                 handle_statuses: frozenset[int] = frozenset()) -> None:
        self._config = config
        self._fetch = fetch
        self._window = window
        self._frontier = frontier
        self._health = health
        self._robots = robots
        self._admission = admission
        self._callbacks = callbacks
        self._outcomes = outcomes
        self._html_only = html_only  # a request without a callback wants HTML only
        self._trees = ByteBudget(TREE_BUDGET)
        self._joins = JoinCache()  # links repeat across a site's pages (menus, footers)
        self._metrics = metrics
        self._wall = wall_clock
        self._handled = handle_statuses  # the spider's: these reach its callbacks too

    async def process(self, job: Job) -> Outcome:
        lease = job.lease
        send, handled = None, self._handled
        sending = HostSend(self._frontier, job.host, self._window.wake)
        if lease.spec is not None or lease.method is not None or lease.body is not None:
            spec = specs.decode(lease.spec)
            send = _sending(lease, spec)
            handled = handled | spec.handle_statuses
        try:
            want: WantBody = self._want_html if self._wants_html(lease) else self._want_2xx
            if handled:
                want = _wanting(want, handled)
            # With many hosts, a host's last queued request closes its connection: no idle
            # socket is left behind for each of thousands of hosts (a later request
            # reconnects). With a few hosts (a site whose links come one at a time, say)
            # every connection is kept.
            keep_alive = (self._frontier.queued(job.host) > 0
                          or self._frontier.hosts <= FEW_HOSTS)
            result: FetchResult | FetchError = await self._fetch.fetch(
                job.url, want, keep_alive=keep_alive, send=send, on_sent=sending)
        except FetchError as exc:
            result = exc
        finally:
            self._frontier.release(job.host, sent=sending.sent)
            self._window.wake()
        if isinstance(result, FetchError):
            return await self._on_fetch_error(job, result)
        self._health.answered(job.host)
        wait = None
        if result.status in RETRYABLE_STATUSES:
            # The server is overloaded: the whole host waits, not just this request.
            wait = retry_after(result.headers.get("Retry-After"), self._wall())
            penalty = self._frontier.slow_down(job.host, wait)
            log.info("%s answered %d: slowing to one request per %.1fs", job.host,
                     result.status, max(penalty, wait or 0))
        else:
            self._frontier.recover(job.host)
        try:
            return await self._on_response(job, result, wait, handled)
        except Exception as exc:  # a bug of ours must cost one request, not the crawl
            log.exception("internal error on %s", lease.url, extra={"url": lease.url})
            return self._outcomes.fail(lease, FailureKind.INTERNAL, message(exc), result.status)

    # -- the host's health ------------------------------------------------------------------

    async def _on_fetch_error(self, job: Job, exc: FetchError) -> Outcome:
        if not isinstance(exc, ConnectError):
            return self._outcomes.retry_or_fail(job.lease, exc, None, None)
        went_down = self._health.connect_failed(job.host, exc)
        if went_down is not None:
            await self._mark_down(job.host, exc, *went_down)
        down = self._health.down(job.host)
        if down is not None:
            return self._outcomes.fail(job.lease, *down, None)
        return self._outcomes.retry_or_fail(job.lease, exc, None, None)

    async def _mark_down(self, host: str, exc: FetchError, kind: FailureKind,
                         reason: str) -> None:
        """Fail the host's queued requests now instead of letting each burn its retries."""
        log.warning("%s is down: %s", host, describe(exc),
                    extra={"host": host, "reason": f"{kind}: {reason}"})
        for item in self._frontier.withdraw(host):
            for job in self._robots.withdraw(item):
                await self._window.record(self._outcomes.fail(job.lease, kind, reason, None))

    # -- the response -----------------------------------------------------------------------

    def _wants_html(self, lease: LeasedRequest) -> bool:
        return self._html_only and lease.callback is None

    @staticmethod
    def _want_2xx(status: int, headers: CIMultiDictProxy[str]) -> bool:
        return 200 <= status < 300

    @staticmethod
    def _want_html(status: int, headers: CIMultiDictProxy[str]) -> bool:
        declared = headers.get("Content-Type")
        return 200 <= status < 300 and (declared is None or is_html_type(declared))

    async def _on_response(self, job: Job, result: FetchResult, wait: float | None,
                           handled: frozenset[int]) -> Outcome:
        """`handled`: the statuses the callback asked to see, as they come (no retry)."""
        lease, status = job.lease, result.status
        if result.location is not None and status not in handled:
            return self._redirect(job, result, result.location)
        if status in RETRYABLE_STATUSES and status not in handled:
            return self._outcomes.retry_or_fail(lease, HTTPStatusError(status, url=lease.url),
                                                status, wait)
        self._metrics.page()
        if not 200 <= status < 300 and status not in handled:
            return Completion(lease.id, status)  # recorded with its status, not parsed
        # The fetcher does not follow redirects: result.url is job.url, the key's parsed view.
        response = Response(job.url, status, result.headers, result.body, depth=lease.depth,
                            robots_sitemaps=self._robots.sitemaps(job),
                            max_links=self._config.max_links, joins=self._joins, key=job.key)
        if self._wants_html(lease) and not response.is_html:
            return Completion(lease.id, status, counters={Skip.NON_HTML: 1})
        if response.is_html and len(response.body) > PARSE_IN_THREAD:
            # selectolax parses without the GIL: a big or pathological page (50,000 nested
            # divs take seconds) must not stall every other request meanwhile. Its tree
            # lives until the callback ends, and big trees share a memory budget.
            held = await self._trees.acquire(len(response.body))
            try:
                await asyncio.to_thread(getattr, response, "tree")
                return await self._call_back(lease, response)
            finally:
                self._trees.release(held)
        return await self._call_back(lease, response)

    def _redirect(self, job: Job, result: FetchResult, location: str) -> Outcome:
        lease = job.lease
        if lease.redirects >= self._config.max_redirects:
            error = TooManyRedirects(
                f"more than {self._config.max_redirects} redirects (last to {location!r})"
            )
            return self._outcomes.fail(lease, error.kind, message(error), result.status)
        self._metrics.page()
        extra = None
        key = urls.join(job.url, location)
        if lease.spec is not None or lease.method is not None or lease.body is not None:
            extra = specs.redirected(RequestExtra(lease.method, lease.spec, lease.body, False),
                                     result.status, job.url,
                                     None if key is None else urls.parsed(key))
        moved = Request.prepared(location, lease.callback, lease.cb_kwargs, lease.priority,
                                 key=key,
                                 credentials=urls.has_credentials(location), extra=extra)
        counters: Counter[str] = Counter()
        # Same depth, callback and priority: a redirect is the same request, moved.
        admitted = self._admission.admit([moved], lease.depth, lease.id, counters,
                                         redirects=lease.redirects + 1)
        return self._completion(lease, result.status, [], admitted, counters,
                                depth=lease.depth)

    async def _call_back(self, lease: LeasedRequest, response: Response) -> Outcome:
        yielded = await self._callbacks.run(lease, response)
        if isinstance(yielded, Failure):
            return yielded
        counters: Counter[str] = Counter()
        if yielded.over or response.links_over:
            counters[Skip.LINK_LIMIT] += yielded.over + response.links_over
        if yielded.dropped:  # by the pipelines: counted with the page, exactly once
            counters.update(yielded.dropped)
        admitted = self._admission.admit(yielded.requests, lease.depth + 1, lease.id, counters)
        self._metrics.items += len(yielded.items)
        return self._completion(lease, response.status, yielded.items, admitted, counters,
                                depth=lease.depth + 1)

    def _completion(self, lease: LeasedRequest, status: int, items: list[str],
                    admitted: dict[str, NewRequest], counters: Counter[str], *,
                    depth: int) -> Completion:
        if self._admission.too_deep(depth):
            # Parked, not remembered: a shorter way to them found later still queues them.
            return Completion(lease.id, status, items, (), counters, list(admitted.values()))
        self._admission.remember(admitted)
        return Completion(lease.id, status, items, list(admitted.values()), counters)


def _sending(lease: LeasedRequest, spec: Spec) -> Sending:
    return Sending(lease.method or "GET", spec.headers, lease.body, spec.cookies, spec.proxy)


def _wanting(want: WantBody, handled: frozenset[int]) -> WantBody:
    """`want`, and the bodies of the statuses a callback asked for."""
    def wanted(status: int, headers: CIMultiDictProxy[str]) -> bool:
        return status in handled or want(status, headers)
    return wanted
