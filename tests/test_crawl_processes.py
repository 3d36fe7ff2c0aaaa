"""Many `crawl site` processes on one PostgreSQL crawl of the many-host site (a process of
its own that logs every request on one monotonic clock): every page stored once, per-host
limits and gaps held over all processes together in the server's own log, a SIGKILLed
process's work taken over (refetching only what it held), and a lease shorter than a slow
fetch kept by renewal, or, with renewal off, taken over with the late outcome fenced."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from signal import SIGKILL

from tests import pg
from tests.helpers import CrawlProcess, export_items, items_by_url
from tests.politeness import Report, assert_fetched_once, assert_polite, check, read_log
from tests.sites import manyhosts

SPEC = manyhosts.Spec(hosts=30, pages=20, latency=(0.05, 0.4), crawl_delay=0.3)
# Pages slower than a lease: 4 hosts, 3 pages each, 1.5 s a page.
SLOW = manyhosts.Spec(hosts=4, pages=3, latency=(1.5, 1.5))
# A gap a little short of the delay is the loop's lag between deciding a start and sending
# it, in processes sharing 2 cores with the site and the database (10-50 ms seen); two
# processes on one host at once would show as gaps near 0 and peaks over the limit.
# A process holds twice its workers in hosts: 6 workers leave some of the 30 to each of three.
PER_HOST, DELAY, WORKERS, TOLERANCE = 2, 0.2, 6, 0.05
LEASE = 2.0  # seconds: a killed process's hosts go to the others after this long
SLOW_LEASE = 0.6


@dataclass(frozen=True)
class Site:
    base: str
    log: Path
    spec: manyhosts.Spec

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def crawl_args(self, state: str) -> list[str]:
        starts = [f"http://{host}:{self.port}/" for host in self.spec.host_names()]
        return ["site", *starts, "--state", state, "--resolve", "*.test:127.0.0.1",
                "--workers", str(WORKERS), "--per-host", str(PER_HOST), "--delay", str(DELAY),
                "--quiet"]

    def report(self) -> Report:
        log = read_log(self.log)
        return check(log.hits, per_host=PER_HOST, delay=DELAY, crawl_delays=log.crawl_delays,
                     tolerance=TOLERANCE, stalls=log.stalls)

    def pages_seen(self) -> int:
        return sum(1 for hit in read_log(self.log).hits if hit.path != "/robots.txt")

    def assert_stored_once(self, state: str) -> None:
        by_url = items_by_url(export_items(state))  # asserts no URL twice
        assert set(by_url) == self.spec.urls(self.port)


@contextlib.contextmanager
def running(spec: manyhosts.Spec, tmp_path: Path) -> Iterator[Site]:
    options = ["--hosts", str(spec.hosts), "--pages", str(spec.pages),
               "--latency", "{}-{}".format(*spec.latency), "--crawl-delay", str(spec.crawl_delay)]
    log = tmp_path / "requests.log"
    with manyhosts.running(options, log) as server:
        yield Site(server.base, log, spec)


def start(stack: contextlib.ExitStack, site: Site, *states: str) -> list[CrawlProcess]:
    """One crawl process a state URL; the first makes the crawl, the others join it once
    the site has seen its first request."""
    procs = [stack.enter_context(CrawlProcess(*site.crawl_args(states[0])))]
    wait_for(lambda: site.pages_seen() > 0, "the first process's first request")
    procs += [stack.enter_context(CrawlProcess(*site.crawl_args(s))) for s in states[1:]]
    return procs


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"waited {timeout:g} s for {what}"
        time.sleep(0.02)


def leased_by(postgres: pg.Cluster, crawl: str, pid: int) -> set[str]:
    """The URLs a crawl process's run holds leases on now (without the site's port)."""
    schema = f"crawl_{crawl}"
    out = postgres.psql(f"SELECT r.url FROM {schema}.requests r JOIN {schema}.runs u"
                        f" ON u.id = r.run WHERE r.state = 1 AND u.pid = {pid}", "crawls")
    return {line for line in out.splitlines() if line}


def finish(*procs: CrawlProcess) -> None:
    for proc in procs:
        assert proc.wait(120) == 0, proc.stderr


def test_three_processes_one_killed_store_every_page_once_politely(
        tmp_path: Path, postgres: pg.Cluster) -> None:
    crawl = pg.crawl_name()
    url = postgres.url_for(crawl) + f"&lease={LEASE:g}"
    with running(SPEC, tmp_path) as site, contextlib.ExitStack() as stack:
        first, victim, third = start(stack, site, url, url, url)
        wait_for(lambda: bool(leased_by(postgres, crawl, victim.proc.pid))
                 or not victim.running(), "the victim to hold leases")
        assert victim.running(), victim.stderr
        victim.send(SIGKILL)
        assert victim.wait(10) == -SIGKILL
        # What it held uncommitted (its leases): the only URLs another may fetch again.
        held = {u.replace(f":{site.port}", "", 1)
                for u in leased_by(postgres, crawl, victim.proc.pid)}
        assert held, "the victim held nothing at its kill"
        finish(first, third)
        lost = [line for p in (first, third) for line in p.stderr.splitlines()
                if "lost the lease" in line or "fenced" in line]
    site.assert_stored_once(url)
    report = site.report()
    assert_polite(report)  # per-host limits and gaps over all three processes together
    assert not lost, lost
    assert_fetched_once(report, SPEC.urls(), may_refetch=held)
    assert set(report.refetched) <= held
    assert max(f.peak for f in report.hosts.values()) == PER_HOST, report.summary()
    assert max(report.robots.values()) <= 3  # once per process at most


def test_renewal_keeps_a_lease_shorter_than_a_fetch(tmp_path: Path,
                                                     postgres: pg.Cluster) -> None:
    url = postgres.url_for(pg.crawl_name()) + f"&lease={SLOW_LEASE:g}"
    with running(SLOW, tmp_path) as site, contextlib.ExitStack() as stack:
        procs = start(stack, site, url, url)
        finish(*procs)
        assert not any("fenced" in p.stderr for p in procs), [p.stderr for p in procs]
    site.assert_stored_once(url)
    report = site.report()
    assert_polite(report)
    assert_fetched_once(report, SLOW.urls())  # nothing taken over, nothing fetched twice


def test_without_renewal_a_takeover_fences_the_late_outcome(tmp_path: Path,
                                                            postgres: pg.Cluster) -> None:
    url = postgres.url_for(pg.crawl_name()) + f"&lease={SLOW_LEASE:g}"
    with running(SLOW, tmp_path) as site, contextlib.ExitStack() as stack:
        # The first never renews (the test-only knob): its hosts run out mid-fetch and the
        # second, renewing, takes them over.
        lax, keeper = start(stack, site, url + "&renew=0", url)
        finish(lax, keeper)
        assert "fenced" in lax.stderr, lax.stderr
        assert "fenced" not in keeper.stderr, keeper.stderr
    site.assert_stored_once(url)  # fetched twice, stored once
    assert read_log(site.log).hits, "the site saw nothing"
    assert site.report().refetched, "no page was fetched again: no takeover happened"
