"""Where a leased request enters the frontier: the host's health and politeness rule, then
robots.txt (`RobotsCoordinator`), decide whether it is queued, held or ended at once."""

from __future__ import annotations

from crawler.config import CrawlConfig
from crawler.engine.jobs import Job, Work
from crawler.engine.outcomes import Outcomes
from crawler.engine.robotstxt import RobotsCoordinator
from crawler.policy.frontier import Frontier
from crawler.policy.retry import HostHealth
from crawler.urls import canon as urls
from crawler.urls.canon import CanonicalURL
from storage import LeasedRequest, Outcome


class Intake:
    def __init__(self, config: CrawlConfig, frontier: Frontier[Work], health: HostHealth,
                 robots: RobotsCoordinator | None, outcomes: Outcomes) -> None:
        self._config = config
        self._frontier = frontier
        self._health = health
        self._robots = robots  # None: robots.txt is not obeyed
        self._outcomes = outcomes
        self._ruled: set[str] = set()  # hosts whose host_policies were looked up

    def admit(self, lease: LeasedRequest) -> Outcome | None:
        """Queue a leased request in the frontier, or hold it until its origin's robots.txt
        is known; a request that ends here (host down, robots.txt forbids) gives its
        outcome."""
        # Trusted as canonical without checking: the store holds only the keys the crawl
        # gave it (admission's, from canon.py and the Resolver), and gives them back as
        # they were. The one place a URL enters the crawl as text not made here.
        key = CanonicalURL(lease.url)
        url = urls.parsed(key)
        job = Job(lease, key, url, urls.host_key(url))
        down = self._health.down(job.host)
        if down is not None:
            return self._outcomes.fail(lease, *down, None)
        if self._config.host_policies and job.host not in self._ruled:
            self._apply_host_policy(job)
        if lease.wait:  # a host another process fetched from last (hostshare.py)
            self._frontier.hold(job.host, lease.wait)
        if self._robots is None:
            self._frontier.push(job.host, job)
            return None
        return self._robots.admit(job)

    def _apply_host_policy(self, job: Job) -> None:
        self._ruled.add(job.host)
        policy = self._config.policy_for(job.url.host or "")
        if policy is not None:
            self._frontier.set_rule(job.host, per_host=policy.per_host, delay=policy.delay)
