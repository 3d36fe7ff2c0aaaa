"""`crawl stats` of a crawl many processes share on PostgreSQL: every process (host name,
pid, status, pages, leases), the hosts by state; the shared totals on each process's
progress line; the schema step (2 -> 3) that counts a run's pages; and the same reads on
SQLite, one process at a time."""

from __future__ import annotations

import contextlib
import io
import re
import socket
import time
from pathlib import Path
from signal import SIGKILL
from typing import Any

from rich.console import Console

from crawler.cli import stats
from crawler.engine import shared as shared_view
from crawler.engine.state import open_state
from crawler.observe import display, report
from crawler.observe.metrics import CrawlTotals, Metrics, SharedTotals
from storage import Completion, HostState, NewRequest, open_store
from storage.locations import Location, schema_name
from storage.postgres.schema import SCHEMA_VERSION
from tests import pg
from tests.helpers import CrawlProcess, crawl_ok, stats_json
from tests.sites import manyhosts

# 14 hosts of 12 pages, 0.25 s apart: a process with 4 workers holds 8 hosts (twice its
# workers), so two processes split the site, for 3 s or so.
SPEC = manyhosts.Spec(hosts=14, pages=12, latency=(0.05, 0.1))
LEASE = 1.0
SHARED = re.compile(r"all processes: (\d+) running ([\d,]+) done")


def _args(base: str, state: str, *extra: str) -> list[str]:
    port = base.rsplit(":", 1)[1]
    return ["site", *(f"http://{h}:{port}/" for h in SPEC.host_names()), "--state", state,
            "--resolve", "*.test:127.0.0.1", "--workers", "4", "--per-host", "2",
            "--delay", "0.25", *extra]


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:g} s for {what}"
        time.sleep(0.05)


def _run_of(postgres: pg.Cluster, crawl: str, pid: int) -> tuple[int, int]:
    """(pages, leases) the database has for the run of process `pid` ((0, 0) before)."""
    schema = schema_name(crawl)
    out = postgres.psql(
        f"SELECT r.pages, (SELECT count(*) FROM {schema}.hosts h WHERE h.lease_run = r.id)"
        f" FROM {schema}.runs r WHERE r.pid = {pid}", "crawls").replace("|", " ").split()
    return (int(out[0]), int(out[1])) if out else (0, 0)


def _by_pid(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["pid"]: p for p in data["processes"]}


def test_stats_show_every_process_and_the_hosts_of_a_shared_crawl(
        tmp_path: Path, postgres: pg.Cluster) -> None:
    crawl = pg.crawl_name()
    url = postgres.url_for(crawl) + f"&lease={LEASE:g}"
    options = ["--hosts", str(SPEC.hosts), "--pages", str(SPEC.pages),
               "--latency", "{}-{}".format(*SPEC.latency)]
    with manyhosts.running(options, tmp_path / "site.log") as site, \
            contextlib.ExitStack() as stack:
        # The first logs its progress lines (stderr is no terminal): the shared figures too.
        first = stack.enter_context(CrawlProcess(*_args(site.base, url,
                                                        "--progress-every", "0.3")))
        first.wait_started()
        victim = stack.enter_context(CrawlProcess(*_args(site.base, url, "--quiet")))
        _wait_for(lambda: _run_of(postgres, crawl, victim.proc.pid)[0] > 0
                  or not victim.running(), "the second process to store pages")
        assert victim.running(), victim.stderr
        victim.send(SIGKILL)
        assert victim.wait(10) == -SIGKILL

        during = stats_json(url)
        assert first.running(), "the crawl ended before stats could see it run"
        procs = _by_pid(during)
        assert set(procs) == {first.proc.pid, victim.proc.pid}, during["processes"]
        alive, killed = procs[first.proc.pid], procs[victim.proc.pid]
        assert alive["status"] == "running" and alive["leases"] >= 1, alive
        assert killed["status"] == "crashed" and killed["pages"] > 0, killed
        for p in procs.values():
            assert p["host"] == socket.gethostname()
            assert p["seen_ago"] is not None and -1 < p["seen_ago"] < 10, p
            assert p["last_seen"] >= p["started"]
        hosts = during["host_states"]
        assert sum(hosts[s.value] for s in HostState) == hosts["total"] == SPEC.hosts, hosts
        assert hosts["leased"] == sum(hosts["leased_by"].values()) >= 1, hosts
        assert set(hosts["leased_by"]) <= {str(alive["run"]), str(killed["run"])}
        text = crawl_ok("stats", url).stdout
        for words in ("processes", str(victim.proc.pid), "crashed", "running", "totals",
                      f"hosts: {SPEC.hosts}", "leased", "gate opens in"):
            assert words in text, f"{words!r} missing from `crawl stats`:\n{text}"

        assert first.wait(60) == 0, first.stderr
        progress = SHARED.findall(first.stderr)

    after = stats_json(url)
    procs = _by_pid(after)
    assert procs[first.proc.pid]["status"] == "finished"
    assert procs[victim.proc.pid]["status"] == "crashed"
    done = after["requests"]["done"]
    assert done == len(SPEC.urls())
    # Every stored page counted once, by the process that stored it (the killed one's too).
    assert sum(p["pages"] for p in procs.values()) == done, after["processes"]
    assert all(p["leases"] == 0 for p in procs.values())
    hosts = after["host_states"]
    assert hosts["done"] == hosts["total"] == SPEC.hosts and hosts["leased_by"] == {}, hosts
    assert all(h["queued"] == h["in_flight"] == 0 for h in hosts["top"])
    assert sum(h["done"] for h in hosts["top"]) == done  # all 14 hosts are in the top 15
    # Its progress lines carried the crawl's figures over both processes as it ran.
    assert progress, first.stderr
    assert max(int(n.replace(",", "")) for _, n in progress) > 0, progress


async def test_a_crawl_of_schema_2_is_read_as_it_is_and_migrated(
        pg_url: str, postgres: pg.Cluster) -> None:
    store = await open_store(pg_url)
    try:
        await store.open_crawl("spider", "{}", fresh=False)
        await store.add([NewRequest("http://a.test/1")])
        await store.finish_run("interrupted")
    finally:
        await store.close()
    schema = schema_name(Location.parse(pg_url).crawl or "")
    # Schema 2: runs had no pages.
    postgres.psql(f'ALTER TABLE "{schema}".runs DROP COLUMN pages;'
                  f' UPDATE "{schema}".crawl_version SET version = 2', "crawls")

    old = await open_state(pg_url, readonly=True)  # read as it is: nothing changed
    try:
        (run,) = await old.processes()
    finally:
        await old.close()
    assert (run.status, run.pages, run.leases) == ("interrupted", None, 0)

    store = await open_store(pg_url)
    try:
        await store.open_crawl("spider", "{}", fresh=False)
        (leased,) = await store.claim(1, time.time())
        await store.record(Completion(leased.id, 200))
        await store.flush()
        first, second = await store.processes()
        assert (first.pages, second.pages) == (0, 1)
        assert second.status == "running" and second.live
    finally:
        await store.close()
    version = postgres.psql(f'SELECT version FROM "{schema}".crawl_version', "crawls")
    assert version.strip() == str(SCHEMA_VERSION)


async def test_sqlite_stats_list_its_runs_and_have_no_host_states(tmp_path: Path) -> None:
    path = tmp_path / "one.db"
    for status in ("interrupted", None):
        store = await open_store(str(path))
        await store.open_crawl("spider", "{}", fresh=False)
        if status is not None:
            await store.finish_run(status)
        await store.close()  # the second: as if killed, never ended
    state = await open_state(str(path), readonly=True)
    try:
        data = await stats.gather(state)
    finally:
        await state.close()
    assert [p["status"] for p in data["processes"]] == ["interrupted", "crashed"]
    assert all(p["pid"] and p["host"] == socket.gethostname() for p in data["processes"])
    assert all(p["pages"] is None and p["leases"] is None for p in data["processes"])
    assert data["host_states"] is None


def test_the_display_and_the_progress_line_show_the_shared_totals_beside_their_own() -> None:
    metrics = Metrics(lambda: 10.0, lambda: 0.0)
    own = CrawlTotals(done=40, queued=5, failed=1, items=40, skipped=0)
    shared = SharedTotals(processes=3, done=12_345, queued=4_000, in_flight=800, failed=7,
                          items=12_000)

    def shown(snapshot: Any) -> tuple[str, str]:
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(display.render(snapshot))
        return console.export_text(), report.progress_line(snapshot)

    alone = metrics.snapshot(spider="s", state="running", crawl=own, live_hosts=(), pool=None)
    panel, line = shown(alone)
    assert "all processes" not in panel and "all processes" not in line
    assert alone.to_dict()["shared"] is None

    metrics.shared = shared  # as the store's reader leaves it, every few seconds
    together = metrics.snapshot(spider="s", state="running", crawl=own, live_hosts=(),
                                pool=None)
    panel, line = shown(together)
    assert ("all processes  3 running · 12,345 done · 4,000 queued · 800 in flight · "
            "7 failed · 12,000 items") in panel, panel
    assert "40 done · 5 queued" in panel  # its own view, still there
    assert "40 done 5 queued 1 failed" in line
    assert SHARED.search(line) and "all processes: 3 running 12,345 done 4,000 queued " \
        "800 in flight" in line, line
    assert together.to_dict()["shared"] == {"processes": 3, "done": 12_345, "queued": 4_000,
                                            "in_flight": 800, "failed": 7, "items": 12_000}


def test_the_shared_figures_are_read_no_more_than_a_twentieth_of_the_time() -> None:
    assert shared_view.pause(0.01) == shared_view.EVERY  # a small crawl: every 2 s
    assert shared_view.pause(0.5) == 10.0  # a count that scans for 0.5 s: 5 % of the time
    assert shared_view.pause(300.0) == shared_view.MOST  # it waited out a reconnection
