"""`crawl site` over 50 hosts of the many-host site, which runs in a process of its own and
logs every request: the server's own log shows every page fetched once, per-host limits and
gaps held (robots.txt Crawl-delay included), also across a kill -9 and a resume, which
refetch only what the killed process had in flight (sent, and not committed yet).

The same checks serve the multi-process crawls of issue 14 (tests/politeness.py reads the
log; tests/sites/manyhosts.py is the site)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import (
    LEASED,
    CrawlProcess,
    crawl_ok,
    export_items,
    items_by_url,
    state_counts,
    urls_in_state,
)
from tests.politeness import Report, assert_fetched_once, assert_polite, check, read_log
from tests.sites import manyhosts

SPEC = manyhosts.Spec(hosts=50, pages=10, latency=(0.01, 0.1), crawl_delay=0.15)
PER_HOST, DELAY = 2, 0.05
# Few workers: with many, the event loop's lag between deciding a start and sending it
# varies more, and the server sees gaps shorter than the delay by that much (20-30 ms at 32
# workers on a busy 2-core machine; a few ms at 12). This leaves room for the few ms.
WORKERS = 12
TOLERANCE = 0.01


@dataclass(frozen=True)
class Site:
    base: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def crawl_args(self, state: Path, per_host: int = PER_HOST, delay: float = DELAY,
                   workers: int = WORKERS) -> list[str]:
        starts = [f"http://{host}:{self.port}/" for host in SPEC.host_names()]
        return ["site", *starts, "--state", str(state), "--resolve", "*.test:127.0.0.1",
                "--workers", str(workers), "--per-host", str(per_host), "--delay", str(delay),
                "--quiet"]

    def report(self) -> Report:
        log = read_log(self.log)
        assert log.crawl_delays == SPEC.crawl_delays()
        return check(log.hits, per_host=PER_HOST, delay=DELAY, crawl_delays=log.crawl_delays,
                     tolerance=TOLERANCE, stalls=log.stalls)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    options = ["--hosts", str(SPEC.hosts), "--pages", str(SPEC.pages),
               "--latency", "{}-{}".format(*SPEC.latency), "--crawl-delay", str(SPEC.crawl_delay)]
    log = tmp_path / "requests.log"
    with manyhosts.running(options, log) as server:
        yield Site(server.base, log)


def _assert_items_are_the_site(state: Path, port: int) -> None:
    by_url = items_by_url(export_items(state))
    assert set(by_url) == SPEC.urls(port), (
        f"missing {sorted(SPEC.urls(port) - set(by_url))[:5]}, "
        f"unexpected {sorted(set(by_url) - SPEC.urls(port))[:5]}")
    assert all(item["status"] == 200 for item in by_url.values())


def _page_lines(log: Path) -> int:
    return sum(1 for hit in read_log(log).hits if hit.path != "/robots.txt")


def test_one_process_fetches_every_page_once_and_politely(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "crawl.db"
    crawl_ok(*site.crawl_args(state))
    _assert_items_are_the_site(state, site.port)
    report = site.report()
    assert_polite(report)
    assert_fetched_once(report, SPEC.urls())
    assert report.robots == {host: 1 for host in SPEC.host_names()}
    # The limits were reached, not just never tried: some host had two in flight, and a
    # Crawl-delay host's pages were spaced by it.
    assert max(f.peak for f in report.hosts.values()) == PER_HOST, report.summary()
    slow = report.hosts[next(iter(SPEC.crawl_delays()))]
    assert slow.min_gap < SPEC.crawl_delay + 0.1, report.summary()


def test_kill_9_and_resume_refetch_only_what_was_in_flight(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "crawl.db"
    with CrawlProcess(*site.crawl_args(state)) as proc:
        proc.wait_started()
        deadline = time.monotonic() + 30
        while _page_lines(site.log) < 150 and proc.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.running(), f"the crawl ended before the kill:\n{proc.stderr}"
        proc.send(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    # What the killed process held uncommitted: its leases; of those, what it had sent
    # (all the server saw before the resume: a request sent just before the kill may reach
    # a handler a little after it, so wait out the longest answer first).
    time.sleep(2 * SPEC.latency[1])
    leased = {url.replace(f":{site.port}", "", 1) for url in urls_in_state(state, LEASED)}
    assert not state_counts(state).complete, "nothing was left to crawl at the kill"
    sent = {hit.url for hit in read_log(site.log).hits}
    # The store commits finished requests in groups (about 1 s), so "in flight" is also
    # what was answered but not committed yet: those are fetched again, nothing else.
    in_flight = leased & sent
    assert in_flight, "the killed process had nothing in flight"

    crawl_ok(*site.crawl_args(state))
    _assert_items_are_the_site(state, site.port)
    report = site.report()
    assert_polite(report)
    assert_fetched_once(report, SPEC.urls(), may_refetch=in_flight)
    assert set(report.robots.values()) <= {1, 2}, report.robots  # once per process at most
    refetched = set(report.refetched)
    assert refetched <= in_flight, sorted(refetched - in_flight)


def test_the_servers_log_catches_a_crawl_that_is_not_polite(site: Site, tmp_path: Path) -> None:
    # --max-crawl-delay 0: robots.txt's Crawl-delay is read, and not obeyed.
    rude = site.crawl_args(tmp_path / "rude.db", per_host=4, delay=0, workers=32)
    crawl_ok(*rude, "--max-crawl-delay", "0")
    report = site.report()  # held to --per-host 2 --delay 0.05 and the Crawl-delays
    assert_fetched_once(report, SPEC.urls())
    with pytest.raises(AssertionError, match="politeness violation"):
        assert_polite(report)
    message = "\n".join(report.violations())
    assert "requests in flight at once (per-host limit 2)" in message
    assert "s apart (delay 0.05 s)" in message
    assert "s apart (delay 0.15 s)" in message
