"""When a failed request is tried again, and when a host is given up. Pure decisions over an
injected random source: the engine asks, then does the I/O (records, logs)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from crawler.errors import FailureKind, FetchError, message

MAX_RETRY_AFTER = 3600.0  # a Retry-After header is obeyed up to an hour

Uniform = Callable[[float, float], float]
"""A random float between two bounds: `random.uniform`, or a seeded `Random(n).uniform`."""


class RetryPolicy:
    """Retries of a retryable failure, `max_retries` at most, with jittered exponential
    backoff: spread out, so the retries of a wave of failures do not arrive together."""

    def __init__(self, max_retries: int, backoff: float,
                 uniform: Uniform = random.uniform) -> None:
        self.max_retries = max_retries
        self._backoff = backoff
        self._uniform = uniform

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after the failure of try number `attempt` (0 for the first)."""
        return float(self._backoff * 2.0**attempt * self._uniform(0.5, 1.5))

    def retry_in(self, attempts: int, exc: FetchError, retry_after: float | None) -> float | None:
        """Seconds until a request that failed with `exc`, after `attempts` earlier tries, is
        tried again (at least what the server's Retry-After asked); None: it fails for good."""
        if not exc.retryable or attempts >= self.max_retries:
            return None
        return max(self.backoff(attempts), retry_after or 0.0)

    @staticmethod
    def why_failed(attempts: int, exc: FetchError) -> str:
        """The stored reason of a request that fails for good, after `attempts` retries."""
        if exc.retryable:
            return f"{message(exc)} (gave up after {attempts + 1} attempts)"
        return message(exc)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return min(max(0.0, when - now), MAX_RETRY_AFTER)


class HostHealth:
    """Hosts that stopped answering. After `dead_after` connection (or DNS) failures in a row
    a host is down for the rest of the run: its requests fail at once, with the reason,
    instead of each burning its retries. Any answer starts the count afresh."""

    def __init__(self, dead_after: int) -> None:
        self._dead_after = dead_after
        self._failures: Counter[str] = Counter()  # in a row, by host
        self._down: dict[str, tuple[FailureKind, str]] = {}  # hosts given up, and why

    def down(self, host: str) -> tuple[FailureKind, str] | None:
        """Why a host's requests fail now (the kind and the reason), or None if it is up."""
        return self._down.get(host)

    def answered(self, host: str) -> None:
        self._failures.pop(host, None)

    def connect_failed(self, host: str, exc: FetchError) -> tuple[FailureKind, str] | None:
        """Count a failure to connect. If it was the last straw (the host is down from now
        on), why: the kind and the reason its requests fail with, for the engine to fail
        what it still holds of the host."""
        self._failures[host] += 1
        if host in self._down or self._failures[host] < self._dead_after:
            return None
        down = self._down[host] = (exc.kind, f"{message(exc)} (host down after "
                                             f"{self._failures[host]} connection failures in "
                                             "a row; --retry-failed queues it again)")
        return down
