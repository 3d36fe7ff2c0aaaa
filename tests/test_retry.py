"""The retry and host-health policy: pure decisions over an injected random source."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

from crawler.errors import BadResponse, ConnectError, FailureKind, FetchTimeout, HTTPStatusError
from crawler.policy.retry import MAX_RETRY_AFTER, HostHealth, RetryPolicy, retry_after


def test_backoff_doubles_with_seeded_jitter() -> None:
    policy = RetryPolicy(5, 2.0, random.Random(3).uniform)
    draws = random.Random(3)
    for attempt in range(4):
        assert policy.backoff(attempt) == 2.0 * 2.0**attempt * draws.uniform(0.5, 1.5)


def test_jitter_stays_within_half_and_one_and_a_half_times() -> None:
    policy = RetryPolicy(5, 1.0, random.Random(0).uniform)
    waits = [policy.backoff(2) for _ in range(1000)]
    assert 2.0 <= min(waits) < 2.2 and 5.8 < max(waits) <= 6.0


def test_retryable_failures_are_retried_up_to_max_retries() -> None:
    policy = RetryPolicy(2, 1.0, lambda low, high: 1.0)
    timeout = FetchTimeout("slow")
    assert policy.retry_in(0, timeout, None) == 1.0
    assert policy.retry_in(1, timeout, None) == 2.0
    assert policy.retry_in(2, timeout, None) is None
    assert policy.why_failed(2, timeout) == "slow (gave up after 3 attempts)"


def test_final_failures_are_not_retried() -> None:
    policy = RetryPolicy(2, 1.0)
    assert policy.retry_in(0, BadResponse("bad gzip"), None) is None
    assert policy.why_failed(0, BadResponse("bad gzip")) == "bad gzip"
    assert policy.retry_in(0, HTTPStatusError(404), None) is None
    assert policy.retry_in(0, HTTPStatusError(503), None) is not None


def test_retry_after_wins_when_longer() -> None:
    policy = RetryPolicy(2, 1.0, lambda low, high: 1.0)
    assert policy.retry_in(0, HTTPStatusError(429), 30.0) == 30.0
    assert policy.retry_in(0, HTTPStatusError(429), 0.5) == 1.0


def test_retry_after_header_as_seconds_or_a_date() -> None:
    now = 1_700_000_000.0
    assert retry_after("120", now) == 120.0
    assert retry_after(" 7 ", now) == 7.0
    assert retry_after("99999999", now) == MAX_RETRY_AFTER
    date = format_datetime(datetime.fromtimestamp(now + 90, UTC), usegmt=True)
    assert retry_after(date, now) == 90.0
    past = format_datetime(datetime.fromtimestamp(now - 90, UTC), usegmt=True)
    assert retry_after(past, now) == 0.0
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None


def test_a_host_is_down_after_dead_after_failures_in_a_row() -> None:
    health = HostHealth(3)
    refused = ConnectError("refused")
    assert health.connect_failed("h:80", refused) is None
    assert health.connect_failed("h:80", refused) is None
    health.answered("h:80")  # starts the count afresh
    assert health.connect_failed("h:80", refused) is None
    assert health.connect_failed("h:80", refused) is None
    assert health.down("h:80") is None
    down = health.connect_failed("h:80", refused)
    assert down == (FailureKind.CONNECT, "refused (host down after 3 connection failures in "
                                         "a row; --retry-failed queues it again)")
    assert health.down("h:80") == down
    assert health.connect_failed("h:80", refused) is None  # down once, not again
    assert health.down("other:80") is None
