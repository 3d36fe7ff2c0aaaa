"""Crawl processes on one PostgreSQL crawl when the database goes away under them: the
server restarted (`pg_ctl restart -m immediate`) mid-crawl, and one process cut off from it
for longer than its lease while another goes on. Each time the crawl finishes with the exact
page set, every page stored once, and the site's own log shows per-host limits and gaps held
over all processes together."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests import pg
from tests.cutter import cutter
from tests.helpers import CrawlProcess
from tests.politeness import assert_polite
from tests.test_crawl_processes import SPEC, finish, leased_by, running, start, wait_for

LEASE = 2.0  # seconds
CUT = 5.0  # seconds a process is cut off from the database: longer than its lease


def test_a_database_restarted_mid_crawl_loses_nothing(tmp_path: Path) -> None:
    with pg.cluster() as postgres:  # its own: restarting it must not touch other tests
        url = postgres.url_for(pg.crawl_name())
        with running(SPEC, tmp_path) as site, contextlib.ExitStack() as stack:
            procs = start(stack, site, url, url)
            total = len(SPEC.urls())
            wait_for(lambda: site.pages_seen() > total // 3, "a third of the pages")
            assert all(p.running() for p in procs), [p.stderr for p in procs]
            postgres.pg_ctl("restart", "-m", "immediate")
            assert site.pages_seen() < total, "the crawl ended before the restart"
            finish(*procs)
        for proc in procs:
            assert "lost the connection" in proc.stderr, proc.stderr
            assert "again after" in proc.stderr, proc.stderr
            assert pg.PASSWORD not in proc.stderr
        site.assert_stored_once(url)
    assert_polite(site.report())


def test_a_process_cut_off_longer_than_its_lease_stops_and_goes_on(
        tmp_path: Path, postgres: pg.Cluster) -> None:
    crawl = pg.crawl_name()
    direct = postgres.url_for(crawl) + f"&lease={LEASE:g}"
    with cutter(postgres.port) as relay, running(SPEC, tmp_path) as site, \
            contextlib.ExitStack() as stack:
        cut_off = direct.replace(f":{postgres.port}/", f":{relay.port}/")
        a = stack.enter_context(CrawlProcess(*site.crawl_args(cut_off)))
        wait_for(lambda: site.pages_seen() > 0, "the first process's first request")
        # The other with room for every host: it takes each of a's as soon as it may.
        b = stack.enter_context(CrawlProcess(*site.crawl_args(direct), "--workers", "64"))
        total = len(SPEC.urls())
        wait_for(lambda: (site.pages_seen() > total // 4 and bool(
            leased_by(postgres, crawl, a.proc.pid))) or not a.running(),
            "a quarter of the pages, and the first process holding leases")
        assert a.running() and site.pages_seen() < total, a.stderr
        relay.cut(CUT)
        finish(a, b)
    site.assert_stored_once(direct)
    assert_polite(site.report())  # no host fetched by both at once, or closer than its gap
    # It stopped sending to the hosts it could no longer vouch for, and went on after.
    assert "stopped work on" in a.stderr, a.stderr
    assert "again after" in a.stderr, a.stderr
    assert "lost the connection" not in b.stderr, b.stderr
