"""Stopping a crawl (kill -9, Ctrl-C, Ctrl-C twice, --max-pages) and resuming it gives
exactly the items of an uninterrupted crawl: none lost, none stored twice.

Every test runs the real `crawl` command as a subprocess against the generated 2,200-page
site (tests/sites/generated.py), served on 127.0.0.1 by one server for the whole module. The
server has a throttle in front of it (a per-request sleep a test can change) so that a crawl
lasts long enough to be interrupted, and it counts every request by path, which is how the
tests see what was fetched and how many times.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    DONE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CrawlProcess,
    Site,
    assert_items_match_site,
    crawl_ok,
    duplicate_items,
    export_items,
    item_set,
    state_counts,
    stats_json,
    throttled_site,
    unthrottled,
    urls_in_state,
)
from tests.sites.generated import expected_pages

#: Seconds the throttled server sleeps per request while a test interrupts a crawl.
SLOW = 0.01
#: Requests in flight at once for the interrupted crawls: with SLOW this caps a crawl at
#: WORKERS / SLOW requests a second, however fast the machine.
WORKERS = 4
#: Requests a full crawl of the site makes: 2,200 pages, 4 non-HTML files, 24 broken links.
ALL_REQUESTS = 2228
#: Not a page: a crawler may fetch it once per run.
ROBOTS = "/robots.txt"


@dataclass
class Reference:
    state: Path
    items: list[dict[str, Any]]
    fetched: Counter[str]  # the requests that the uninterrupted crawl made


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with throttled_site() as served:
        yield served


@pytest.fixture(autouse=True)
def _fast_again(site: Site) -> Iterator[None]:
    yield from unthrottled(site)


@pytest.fixture(scope="module")
def reference(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """One uninterrupted crawl of the site: what every resumed crawl must end up equal to."""
    state = tmp_path_factory.mktemp("reference") / "reference.db"
    before = site.requests()
    crawl_ok(*site_command(site, state))
    fetched = site.requests() - before
    items = export_items(state)
    assert_items_match_site(items, site.base)
    # Every request once, plus the site's robots.txt once for the run.
    assert sum(page_fetches(fetched).values()) == ALL_REQUESTS, fetched.most_common(5)
    assert fetched[ROBOTS] == 1
    return Reference(state, items, fetched)


def site_command(site: Site, state: Path, *extra: str) -> list[str]:
    return ["site", site.start, "--state", str(state), "--delay", "0", "--quiet", *extra]


def slow_command(site: Site, state: Path) -> list[str]:
    return site_command(site, state, "--workers", str(WORKERS), "--per-host", str(WORKERS))


def page_fetches(fetched: Counter[str]) -> Counter[str]:
    return Counter({path: n for path, n in fetched.items() if path != ROBOTS})


def assert_fetched_once(fetched: Counter[str], reference: Reference) -> None:
    """Every page of the site fetched exactly once, nothing else fetched."""
    pages = page_fetches(fetched)
    twice = sorted(path for path, n in pages.items() if n > 1)
    assert not twice, f"{len(twice)} path(s) fetched more than once, e.g. {twice[:10]}"
    assert set(pages) == set(page_fetches(reference.fetched)), (
        sorted(set(pages) ^ set(page_fetches(reference.fetched)))[:10]
    )


def assert_complete_and_equal(state: Path, site: Site, reference: Reference
                              ) -> dict[str, Any]:
    """The finished crawl in `state` holds exactly the reference crawl's items, once each.
    Returns its `crawl stats --json`, for a test to check more of it."""
    items = export_items(state)
    assert_items_match_site(items, site.base)
    assert len(items) == len(reference.items)
    assert item_set(items) == item_set(reference.items)
    urls, requests = duplicate_items(state)
    assert not urls, f"URLs stored in more than one item: {urls}"
    assert not requests, f"requests with more than one item: {requests}"
    stats = stats_json(state)
    assert stats["requests"]["queued"] == 0, stats
    assert stats["requests"]["in_flight"] == 0, stats
    assert stats["requests"]["done"] + stats["requests"]["failed"] == ALL_REQUESTS, stats
    assert stats["items"] == len(reference.items), stats
    assert stats["complete"] is True, stats
    return stats


def random_delays(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    delays = [rng.uniform(0.25, 1.0) for _ in range(n)]
    # The throttle caps the crawl at WORKERS / SLOW requests a second, so these delays
    # cannot add up to a whole crawl: every interrupted run is caught unfinished.
    assert sum(delays) * WORKERS / SLOW < ALL_REQUESTS * 0.85, delays
    return delays


# -- kill -9 ----------------------------------------------------------------------------------


def test_sigkill_at_random_moments_then_resume(site: Site, reference: Reference,
                                               tmp_path: Path) -> None:
    state = tmp_path / "killed.db"
    command = slow_command(site, state)
    site.throttle.delay = SLOW
    delays = random_delays(7, 3)
    done_before = 0
    for run, delay in enumerate(delays, 1):
        started = site.throttle.started
        with CrawlProcess(*command) as proc:
            proc.wait_started()
            time.sleep(delay)
            assert proc.running(), f"run {run} ended before the kill:\n{proc.stderr}"
            proc.send(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        assert site.throttle.started > started, f"run {run} fetched nothing in {delay:.2f}s"
        counts = state_counts(state)
        assert not counts.complete, f"run {run}: the crawl finished before the kill: {counts}"
        # A kill loses what was not committed yet (refetched later), never what was.
        assert counts.done >= done_before, (run, counts, done_before)
        done_before = counts.done
    assert done_before > 0, "no run committed any finished request before being killed"

    site.throttle.delay = 0.0
    with CrawlProcess(*command) as proc:
        assert proc.wait() == EXIT_OK, proc.stderr
        assert "resuming" in proc.stderr, proc.stderr
    stats = assert_complete_and_equal(state, site, reference)
    runs = [r["status"] for r in stats["runs"]]
    assert runs == ["killed"] * len(delays) + ["finished"], runs


# -- Ctrl-C -----------------------------------------------------------------------------------


def test_sigint_at_random_moments_then_resume(site: Site, reference: Reference,
                                              tmp_path: Path) -> None:
    state = tmp_path / "interrupted.db"
    command = slow_command(site, state)
    site.throttle.delay = SLOW
    before = site.requests()
    done_before = 0
    delays = random_delays(30, 3)
    for run, delay in enumerate(delays, 1):
        with CrawlProcess(*command) as proc:
            proc.wait_started()
            time.sleep(delay)
            assert proc.running(), f"run {run} ended before the interrupt:\n{proc.stderr}"
            proc.send(signal.SIGINT)
            code = proc.wait(15)
            assert code == EXIT_INTERRUPTED, f"run {run} exited {code}:\n{proc.stderr}"
            assert "resume with" in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr, proc.stderr
        counts = state_counts(state)
        assert not counts.complete, f"run {run}: the crawl finished before the stop: {counts}"
        # A graceful stop commits what it finished and gives its leases back.
        assert counts.done > done_before, (run, counts, done_before)
        assert counts.leased == 0, (run, counts)
        done_before = counts.done

    site.throttle.delay = 0.0
    with CrawlProcess(*command) as proc:
        assert proc.wait() == EXIT_OK, proc.stderr
    stats = assert_complete_and_equal(state, site, reference)
    # Graceful stops lose no finished work: nothing was ever fetched twice.
    assert_fetched_once(site.requests() - before, reference)
    runs = [r["status"] for r in stats["runs"]]
    assert runs == ["interrupted"] * len(delays) + ["finished"], runs


def test_double_sigint_exits_at_once_and_resumes(site: Site, reference: Reference,
                                                 tmp_path: Path) -> None:
    state = tmp_path / "double.db"
    command = slow_command(site, state)
    site.throttle.delay = SLOW
    with CrawlProcess(*command) as proc:
        proc.wait_started()
        time.sleep(0.4)
        # From now on every request takes 2 s: a graceful stop would have to wait for them.
        site.throttle.delay = 2.0
        started = site.throttle.started
        deadline = time.monotonic() + 10
        while site.throttle.started == started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert site.throttle.started > started, "no slow request was started"
        proc.send(signal.SIGINT)
        time.sleep(0.3)
        assert proc.running(), f"the first SIGINT did not wait for requests in flight:\n" \
                               f"{proc.stderr}"
        proc.send(signal.SIGINT)
        code = proc.wait(10)
        assert code == EXIT_INTERRUPTED, f"exited {code}:\n{proc.stderr}"
        # It did not wait for its requests: the server is still sleeping on them.
        assert site.throttle.in_flight > 0, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
    site.throttle.delay = 0.0
    site.throttle.wait_idle()
    assert not state_counts(state).complete

    with CrawlProcess(*command) as proc:
        assert proc.wait() == EXIT_OK, proc.stderr
        assert "resuming" in proc.stderr, proc.stderr
    assert_complete_and_equal(state, site, reference)


def test_graceful_stop_and_resume_fetch_every_page_once(site: Site, reference: Reference,
                                                        tmp_path: Path) -> None:
    state = tmp_path / "once.db"
    command = slow_command(site, state)
    site.throttle.delay = SLOW
    before = site.requests()
    with CrawlProcess(*command) as proc:
        proc.wait_started()
        time.sleep(0.5)
        assert proc.running(), proc.stderr
        proc.send(signal.SIGINT)
        assert proc.wait(15) == EXIT_INTERRUPTED, proc.stderr
    first = page_fetches(site.requests() - before)
    done = {site.path(url) for url in urls_in_state(state, DONE)}
    assert done, "the interrupted run stored nothing"
    assert not state_counts(state).complete
    # Everything the first run fetched is stored as done: a graceful stop loses nothing.
    assert set(first) == done, (sorted(set(first) - done)[:10], sorted(done - set(first))[:10])

    site.throttle.delay = 0.0
    middle = site.requests()
    with CrawlProcess(*command) as proc:
        assert proc.wait() == EXIT_OK, proc.stderr
        assert "resuming" in proc.stderr, proc.stderr
    second = page_fetches(site.requests() - middle)
    assert "/" not in second, "the resumed crawl fetched the start URL again"
    again = sorted(set(second) & done)
    assert not again, f"the resumed crawl refetched {len(again)} done page(s): {again[:10]}"
    assert_fetched_once(first + second, reference)
    assert_complete_and_equal(state, site, reference)


# -- finished crawls, --fresh and --max-pages -------------------------------------------------


def test_rerun_of_a_finished_crawl_is_a_no_op(site: Site, reference: Reference,
                                              tmp_path: Path) -> None:
    state = tmp_path / "finished.db"
    shutil.copyfile(reference.state, state)
    before = site.requests()
    proc = crawl_ok(*site_command(site, state))
    fetched = site.requests() - before
    assert not fetched, f"a finished crawl fetched again: {fetched.most_common(10)}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert item_set(export_items(state)) == item_set(reference.items)
    assert stats_json(state)["items"] == len(reference.items)


def test_fresh_starts_a_finished_crawl_over(site: Site, reference: Reference,
                                            tmp_path: Path) -> None:
    state = tmp_path / "fresh.db"
    shutil.copyfile(reference.state, state)
    before = site.requests()
    crawl_ok(*site_command(site, state, "--fresh"))
    fetched = site.requests() - before
    # Everything fetched again, once.
    assert page_fetches(fetched) == page_fetches(reference.fetched)
    runs = assert_complete_and_equal(state, site, reference)["runs"]  # not doubled
    assert [r["status"] for r in runs] == ["finished"], runs


def test_max_pages_stops_and_a_rerun_continues(site: Site, reference: Reference,
                                               tmp_path: Path) -> None:
    state = tmp_path / "limited.db"
    before = site.requests()
    for limit in (300, 1000):
        proc = crawl_ok(*site_command(site, state, "--max-pages", str(limit)))
        counts = state_counts(state)
        assert limit <= counts.finished <= limit + 16, (limit, counts, proc.stderr)
        assert counts.queued > 0 and counts.leased == 0, counts
        assert counts.items <= counts.finished, counts
        assert stats_json(state)["runs"][-1]["status"] == "page_limit"
    crawl_ok(*site_command(site, state))
    assert_complete_and_equal(state, site, reference)
    # A --max-pages stop is a clean stop: nothing was fetched twice.
    assert_fetched_once(site.requests() - before, reference)
    assert len(expected_pages(site.base)) == len(reference.items)
