"""`crawl site URL --state postgresql://...` end to end: the real command crawls a local site
into a throwaway PostgreSQL server; kill -9 and a resume store every page once; `crawl stats`
and `crawl export` read the crawl, and no output shows the URL's password."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg
from tests.helpers import (
    EXIT_OK,
    CrawlProcess,
    Site,
    assert_items_match_site,
    crawl_ok,
    export_items,
    stats_json,
    throttled_site,
    unthrottled,
)

PAGES = 400
SLOW = 0.01  # seconds the server sleeps a request while a crawl is to be killed


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with throttled_site(PAGES) as served:
        yield served


@pytest.fixture(autouse=True)
def _fast_again(site: Site) -> Iterator[None]:
    yield from unthrottled(site)


@pytest.fixture
def database(postgres: pg.Cluster) -> str:
    """The URL (password included) of a database of this test's own: the crawl's name is
    left to the crawler, and `crawl stats URL` finds the database's only crawl."""
    name = f"d{uuid.uuid4().hex[:10]}"
    postgres.psql(f"CREATE DATABASE {name} OWNER crawler")
    return postgres.url_for().replace("/crawls", f"/{name}")


def command(site: Site, url: str, *extra: str) -> list[str]:
    return ["site", site.start, "--state", url, "--delay", "0", "--quiet", *extra]


def pages_of(fetched: Counter[str]) -> Counter[str]:
    return Counter({p: n for p, n in fetched.items() if p != "/robots.txt"})


def assert_every_page_once(url: str, site: Site) -> dict[str, object]:
    items = export_items(url)  # asserts one item per URL as it checks them
    assert_items_match_site(items, site.base, pages=PAGES)
    stats = stats_json(url)
    requests = stats["requests"]
    assert requests["queued"] == requests["in_flight"] == 0, stats
    assert stats["items"] == PAGES and stats["complete"] is True, stats
    return stats


def test_a_crawl_into_postgresql_and_stats_and_export_read_it(site: Site,
                                                              database: str) -> None:
    proc = crawl_ok(*command(site, database, "--log-level", "INFO"))
    assert pg.PASSWORD not in proc.stderr + proc.stdout
    assert "new crawl 'site' in postgresql://crawler@127.0.0.1:" in proc.stderr, proc.stderr
    # Named as its SQLite file would be: HOST_PORT-DIGEST.
    assert "?crawl=127.0.0.1_" in proc.stderr, proc.stderr
    stats = assert_every_page_once(database, site)
    assert str(stats["state_file"]).startswith("postgresql://crawler@127.0.0.1:")
    assert "?crawl=127.0.0.1_" in str(stats["state_file"])
    text = crawl_ok("stats", database)
    assert pg.PASSWORD not in text.stdout + text.stderr
    assert "postgresql://crawler@127.0.0.1:" in text.stdout
    # A second run finds it complete and fetches nothing.
    before = site.requests()
    again = crawl_ok(*command(site, database))
    assert pages_of(site.requests() - before) == Counter(), again.stderr
    assert pg.PASSWORD not in again.stderr + again.stdout


def test_sigkill_then_resume_stores_every_page_once(site: Site, database: str) -> None:
    args = command(site, database, "--workers", "4", "--per-host", "4")
    stored: set[str] = set()  # pages whose items were committed before a kill
    site.throttle.delay = SLOW
    for delay in (0.6, 0.9):
        before = site.requests()
        with CrawlProcess(*args) as proc:
            proc.wait_started()
            time.sleep(delay)
            assert proc.running(), proc.stderr
            proc.send(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        again = set(pages_of(site.requests() - before)) & stored
        assert not again, f"pages stored before a kill were fetched again: {sorted(again)[:5]}"
        stats = stats_json(database)
        assert stats["complete"] is False, "the crawl finished before the kill"
        assert stats["running"] is False  # the server dropped the killed process's lock
        stored |= {site.path(item["url"]) for item in export_items(database)}
    assert stored, "no run committed anything before its kill"
    site.throttle.delay = 0.0
    before = site.requests()
    with CrawlProcess(*args) as proc:
        assert proc.wait() == EXIT_OK, proc.stderr
        assert "resuming" in proc.stderr, proc.stderr
    again = set(pages_of(site.requests() - before)) & stored
    assert not again, f"pages stored before a kill were fetched again: {sorted(again)[:5]}"
    stats = assert_every_page_once(database, site)
    runs = [r["status"] for r in stats["runs"]]  # type: ignore[attr-defined]
    assert runs == ["killed", "killed", "finished"], runs


def test_a_database_out_of_reach_is_a_clear_error(site: Site) -> None:
    from tests.helpers import crawl  # noqa: PLC0415

    port = pg.free_port()
    url = f"postgresql://crawler:{pg.PASSWORD}@127.0.0.1:{port}/crawls"
    proc = crawl(*command(site, url))
    assert proc.returncode == 2, proc.stderr
    assert f"cannot connect to postgresql://crawler@127.0.0.1:{port}/crawls" in proc.stderr
    assert pg.PASSWORD not in proc.stderr + proc.stdout


def test_a_feed_on_a_shared_crawl_is_refused_before_anything_is_fetched(
        site: Site, database: str, tmp_path: Path) -> None:
    from tests.helpers import crawl  # noqa: PLC0415

    feed = tmp_path / "items.jsonl"
    started = site.throttle.started
    proc = crawl(*command(site, database, "-o", str(feed)))
    assert proc.returncode == 2, proc.stderr
    assert "run `crawl export` of it" in proc.stderr, proc.stderr
    assert site.throttle.started == started, "pages were fetched"
    assert not feed.exists()
