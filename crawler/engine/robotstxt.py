"""robots.txt for the engine: which leased requests wait for their origin's file, fetching
it, and what its answer means for them. The rules (RFC 9309: redirects, 4xx, 5xx, expiry)
are `crawler.policy.robots`'s decisions; this module does the I/O they ask for."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

from yarl import URL

from crawler.config import CrawlConfig
from crawler.engine.fetch import HostSend, MeteredFetch
from crawler.engine.jobs import Job, RobotsJob, Work
from crawler.engine.outcomes import Outcomes
from crawler.errors import FetchError
from crawler.http.transport import OnSent
from crawler.policy import robots
from crawler.policy.admission import Skip
from crawler.policy.frontier import Frontier
from crawler.policy.retry import RetryPolicy
from crawler.urls.origin import Origin, origin, origin_of
from crawler.urls.scope import Scope
from storage import Completion, Defer, Outcome

log = logging.getLogger("crawler")


class RobotsCoordinator:
    """Holds a request until its origin's robots.txt is known (one `RobotsJob` fetches it,
    through the frontier like any request), then queues, skips or fails it as the file says."""

    def __init__(self, gate: robots.RobotsGate[Job], frontier: Frontier[Work],
                 fetch: MeteredFetch, *, outcomes: Outcomes, retry: RetryPolicy,
                 config: CrawlConfig, scope: Scope, clock: Callable[[], float],
                 wall_clock: Callable[[], float]) -> None:
        self._gate = gate
        self._frontier = frontier
        self._fetch = fetch
        self._outcomes = outcomes
        self._retry = retry
        self._config = config
        self._scope = scope
        self._clock = clock
        self._wall = wall_clock
        self.wake: Callable[[], None] = lambda: None
        """Wakes the workers waiting for a host to be ready (the claim window's, once made)."""

    def admit(self, job: Job) -> Outcome | None:
        """Queue a job its origin's robots.txt allows; hold it while the file is not known
        (queueing the file's fetch for the first one held); a job the file forbids ends
        here, counted, never fetched."""
        site = _origin(job)
        verdict = self._gate.check(site, job.key)
        if verdict is None:
            if self._gate.hold(site, job):
                self._frontier.push(job.host,
                                    RobotsJob(site, robots.robots_url(job.url), job.host))
            return None
        return self._obey(job, verdict)

    def sitemaps(self, job: Job) -> Sequence[str]:
        """The sitemaps the robots.txt of a page's origin names (none while not known)."""
        policy = self._gate.policy(_origin(job))
        return policy.sitemaps if policy is not None else ()

    def withdraw(self, item: Work) -> Iterator[Job]:
        """The jobs a frontier item stands for, taken out (its host is down): a robots.txt
        fetch stands for the jobs held for it."""
        if isinstance(item, RobotsJob):
            yield from self._gate.withdraw(item.origin)
        else:
            yield item

    def forget(self, host: str) -> None:
        """Drop every job of one host (another process holds it now): those queued, and
        those held for a robots.txt, even one being fetched (it settles with none)."""
        for item in self._frontier.withdraw(host):
            for _ in self.withdraw(item):
                pass
        self._gate.withdraw_where(lambda job: job.host == host)

    async def process(self, job: RobotsJob) -> list[Outcome]:
        """Fetch the file, then settle the requests that waited for it."""
        sending = HostSend(self._frontier, job.host, self.wake)
        try:
            policy = await fetch_robots(self._fetch, job.url, self._scope, self._clock,
                                        on_sent=sending)
        finally:
            self._frontier.release(job.host, sent=sending.sent)
        return self._resolve(job, policy)

    def _resolve(self, job: RobotsJob, policy: robots.Robots) -> list[Outcome]:
        done = self._gate.resolve(job.origin, policy)
        if done.retry:
            # Disallowed for now: the requests go back to the queue for a while (no attempt
            # used), and the next one claimed asks for robots.txt again.
            wait = self._retry.backoff(done.tries - 1)
            log.info("%s: %s; trying again in %.0fs", job.origin, policy.why, wait,
                     extra={"host": job.host, "reason": policy.why})
            return [Defer(j.lease.id, self._wall() + wait, f"robots: {policy.why}")
                    for j in done.jobs]
        if done.policy.state is robots.RobotsState.UNREACHABLE:
            log.warning("%s: %s", job.origin, done.policy.why,
                        extra={"host": job.host, "reason": done.policy.why})
        delay = done.policy.crawl_delay(self._config.user_agent)
        if delay is not None:
            own = self._frontier.rule(job.host).delay
            self._frontier.set_delay(job.host,
                                     max(own, min(delay, self._config.max_crawl_delay)))
        outcomes = (self._obey(j, self._gate.verdict(done.policy, j.key))
                    for j in done.jobs)
        return [o for o in outcomes if o is not None]

    def _obey(self, job: Job, verdict: robots.Verdict) -> Outcome | None:
        """Queue an allowed job; a disallowed one ends here, counted, never fetched."""
        if verdict is robots.Verdict.ALLOW:
            self._frontier.push(job.host, job)
            return None
        if verdict is robots.Verdict.FAIL:
            return self._outcomes.fail(job.lease, *self._gate.failure(_origin(job)),
                                       None)
        return Completion(job.lease.id, None, counters={Skip.ROBOTS: 1})


async def fetch_robots(fetch: MeteredFetch, url: URL, scope: Scope,
                       clock: Callable[[], float], *,
                       on_sent: OnSent | None = None) -> robots.Robots:
    """One origin's robots.txt at `url`, its redirects followed as RFC 9309 says (within
    the crawl's scope): the policy it sets. `crawl fetch` asks it the same way."""
    hops = 0  # redirects followed: the policy says when the chain ends
    while True:
        try:
            result = await fetch.fetch(url, on_sent=on_sent)
        except FetchError as exc:
            return robots.after_failure(exc, url, clock())
        step = robots.after_answer(result.url, result.status, result.location, result.body,
                                   hops=hops, in_scope=scope.allows_url, now=clock())
        if isinstance(step, robots.Offsite):
            log.info("robots.txt of %s redirects to %s, outside the crawl's scope: not "
                     "followed, so the file is unavailable (RFC 9309: all allowed)",
                     origin(url), step.target, extra={"url": str(url)})
            return step.policy
        if isinstance(step, robots.Robots):
            return step
        url, hops = step.url, hops + 1


def _origin(job: Job) -> Origin:
    site = origin_of(job.key)
    assert site is not None, job.key  # a canonical URL always has a path
    return site
