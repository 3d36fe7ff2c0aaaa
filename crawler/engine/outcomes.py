"""The outcomes that end a request short of a page: failures and retries, counted in the
run's figures and logged as they always were. The decisions are `crawler.policy.retry`'s."""

from __future__ import annotations

import logging
from collections.abc import Callable

from crawler.errors import FailureKind, FetchError, describe
from crawler.observe.metrics import Metrics
from crawler.policy.retry import RetryPolicy
from storage import Failure, LeasedRequest, Retry

log = logging.getLogger("crawler")


class Outcomes:
    def __init__(self, metrics: Metrics, retry: RetryPolicy,
                 wall_clock: Callable[[], float]) -> None:
        self._metrics = metrics
        self._retry = retry
        self._wall = wall_clock
        self.failed_with_spec: dict[int, LeasedRequest] = {}
        """Failed requests that may have an errback, until their failure is recorded (where
        the errback is called: `crawler.engine.errbacks`)."""

    def fail(self, lease: LeasedRequest, kind: FailureKind, error: str,
             status: int | None) -> Failure:
        self._metrics.failed += 1
        if lease.spec is not None:
            self.failed_with_spec[lease.id] = lease
        return Failure(lease.id, kind, error, status)

    def retry_or_fail(self, lease: LeasedRequest, exc: FetchError, status: int | None,
                      retry_after: float | None) -> Retry | Failure:
        """Try again later if the policy allows it, else fail for good."""
        wait = self._retry.retry_in(lease.attempts, exc, retry_after)
        if wait is not None:
            self._metrics.retried += 1
            log.debug("retrying %s in %.1fs: %s", lease.url, wait, describe(exc))
            return Retry(lease.id, self._wall() + wait, describe(exc), status)
        text = self._retry.why_failed(lease.attempts, exc)
        log.warning("failed %s: %s: %s", lease.url, exc.kind, text,
                    extra={"url": lease.url, "reason": f"{exc.kind}: {text}", "status": status})
        return self.fail(lease, exc.kind, text, status)
