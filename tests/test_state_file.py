"""The state file's rules, through the `crawl` command: files that are not (or no longer)
this crawler's state files are refused and left byte-for-byte alone; one crawl at a time
writes a state file; `stats` and `export` read a crawl while it runs.

A refused file must keep its bytes (sha256 before and after) and must not gain SQLite side
files (`-wal`, `-shm`) next to it.
"""

from __future__ import annotations

import csv
import json
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    EXIT_OK,
    EXIT_USAGE,
    CrawlProcess,
    Site,
    assert_items_match_site,
    crawl,
    crawl_ok,
    describe,
    export_items,
    items_by_url,
    sha256,
    side_files,
    site_command,
    stats_json,
    throttled_site,
    unthrottled,
)

PAGES = 200  # a small generated site: quick to crawl in full


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with throttled_site(PAGES) as served:
        yield served


@pytest.fixture(autouse=True)
def _fast_again(site: Site) -> Iterator[None]:
    yield from unthrottled(site)


@pytest.fixture(scope="module")
def real_state(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished crawl of the small site, closed cleanly. Do not change it: copy it."""
    state = tmp_path_factory.mktemp("real") / "real.db"
    crawl_ok(*site_command(site, state))
    assert not side_files(state), "a cleanly closed crawl left SQLite side files"
    return state


# -- files that must be refused ---------------------------------------------------------------


def _corrupt(path: Path, real: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(16384))


def _truncated(path: Path, real: Path) -> None:
    path.write_bytes(real.read_bytes()[:2048])


def _foreign(path: Path, real: Path) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        conn.execute("INSERT INTO users (name) VALUES ('ada'), ('grace')")
    conn.close()


def _newer_schema(path: Path, real: Path) -> None:
    shutil.copyfile(real, path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


REFUSED: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    # case: (how to make the file, a word the error message must contain)
    "corrupt": (_corrupt, "not a crawl state file"),
    "truncated": (_truncated, ""),  # refused or reported damaged: either is fine
    "foreign": (_foreign, "not a crawl state file"),
    "newer_schema": (_newer_schema, "newer version"),
}


def _command(name: str, site: Site, path: Path) -> list[str]:
    if name == "site":
        return site_command(site, path)
    if name == "stats":
        return ["stats", str(path), "--json"]
    return ["export", str(path)]


def assert_refused(proc: subprocess.CompletedProcess[str], path: Path,
                   must_say: str = "") -> None:
    assert proc.returncode == EXIT_USAGE, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    assert str(path) in proc.stderr, f"the message does not name the file:\n{proc.stderr}"
    assert must_say.lower() in proc.stderr.lower(), proc.stderr
    assert not proc.stdout.strip(), f"a refused file printed output:\n{proc.stdout}"


@pytest.mark.parametrize("command", ["site", "stats", "export"])
@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_file_is_left_untouched(case: str, command: str, site: Site, real_state: Path,
                                        tmp_path: Path) -> None:
    make, must_say = REFUSED[case]
    path = tmp_path / f"{case}.db"
    make(path, real_state)
    assert not side_files(path), "test setup left side files"
    digest = sha256(path)
    started = site.throttle.started

    proc = crawl(*_command(command, site, path), timeout=60)

    assert_refused(proc, path, must_say)
    assert sha256(path) == digest, f"`crawl {command}` changed the bytes of a refused file"
    assert site.throttle.started == started, "it crawled anyway"
    assert side_files(path) == [], (
        f"`crawl {command}` left SQLite side files next to a refused file: "
        f"{[p.name for p in side_files(path)]}"
    )


def test_state_file_of_another_spider_is_refused(site: Site, tmp_path: Path) -> None:
    spider = tmp_path / "other_spider.py"
    spider.write_text(
        "from crawler import Spider\n\n\n"
        "class Other(Spider):\n"
        '    name = "other"\n'
        f"    start_urls = [{site.start!r}]\n"
        "    max_pages = 5\n\n"
        "    async def parse(self, response):\n"
        '        yield {"url": response.url, "spider": "other"}\n'
    )
    state = tmp_path / "other.db"
    crawl_ok("run", str(spider), "--state", str(state), "--delay", "0", "--quiet")
    assert not side_files(state)
    digest = sha256(state)
    started = site.throttle.started

    proc = crawl(*site_command(site, state), timeout=60)

    assert_refused(proc, state, "other")
    assert sha256(state) == digest, "the other spider's state file was changed"
    assert side_files(state) == [], [p.name for p in side_files(state)]
    assert site.throttle.started == started, "it crawled anyway"
    # It is a good state file, just not the site spider's: reading it is fine.
    assert stats_json(state)["spider"] == "other"
    assert {item["spider"] for item in export_items(state)} == {"other"}


@pytest.mark.parametrize("command", ["stats", "export"])
def test_reading_a_missing_file_is_refused_and_creates_nothing(command: str,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    proc = crawl(command, str(path), timeout=60)
    assert_refused(proc, path)
    assert not path.exists(), f"`crawl {command}` created the file it was asked to read"
    assert side_files(path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- one writer, many readers -----------------------------------------------------------------


def test_second_crawl_on_a_running_state_file_is_refused(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "busy.db"
    command = site_command(site, state, "--workers", "2", "--per-host", "2")
    site.throttle.delay = 0.05  # about 5 s for the whole site: it outlasts the second crawl
    with CrawlProcess(*command) as first:
        first.wait_started()
        second = crawl(*command, timeout=60)
        assert first.running(), "the first crawl ended too soon for this test to mean much"
        site.throttle.delay = 0.0  # seen refused: the first may finish at full speed
        assert second.returncode == EXIT_USAGE, describe(second)
        assert "another crawl is running" in second.stderr, second.stderr
        assert str(state) in second.stderr, second.stderr
        assert "Traceback" not in second.stderr, second.stderr
        assert first.wait() == EXIT_OK, first.stderr
    assert_items_match_site(export_items(state), site.base, pages=PAGES)
    stats = stats_json(state)
    assert stats["complete"] is True, stats
    assert [r["status"] for r in stats["runs"]] == ["finished"], stats["runs"]


def test_stats_and_export_read_a_running_crawl(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "live.db"
    # About 15 s for the whole site with 2 workers, until enough readings saw it run: then
    # full speed, so that the crawl ends while it is being read.
    site.throttle.delay = 0.15
    readings: list[dict[str, Any]] = []
    exported: list[list[dict[str, Any]]] = []
    with CrawlProcess(*site_command(site, state, "--workers", "2", "--per-host", "2")) as proc:
        proc.wait_started()
        texts = []
        while proc.running():
            if len(readings) in (2, 4):
                texts.append(crawl("stats", str(state), timeout=60).stdout)
            # Every reading must work, including one that overlaps the end of the crawl.
            stats = crawl("stats", str(state), "--json", timeout=60)
            assert stats.returncode == EXIT_OK, describe(stats)
            readings.append(json.loads(stats.stdout))
            if len(readings) == 2:
                exported.append(export_items(state))
            if len(readings) == 3:  # three readings of a running crawl: enough
                site.throttle.delay = 0.0
            time.sleep(0.2)
        assert proc.wait() == EXIT_OK, proc.stderr

    live = [r for r in readings if r["runs"][-1]["status"] == "running"]
    assert len(live) >= 3, f"only {len(live)} reading(s) saw the crawl running"
    # A running crawl's stored figures: its speed, statuses and pool, saved as it goes.
    figures = [r["runs"][-1]["stats"] for r in live if r["runs"][-1]["stats"]]
    assert figures, "no reading saw the running crawl's stored figures"
    assert figures[-1]["pages"] > 0 and figures[-1]["statuses"].get("200", 0) > 0
    assert figures[-1]["pool"]["created"] >= 1
    assert exported, "no export while the crawl ran"
    done = [r["requests"]["done"] for r in readings]
    assert done == sorted(done), f"done went down between readings: {done}"
    assert all(r["requests"]["in_flight"] >= 0 for r in readings)

    final = stats_json(state)
    total = final["requests"]["done"]
    assert final["complete"] is True, final
    assert min(done) < total, f"every reading already saw the final total: {done}"
    assert done[-1] <= total, (done, total)
    mid = items_by_url(exported[0])  # valid JSON lines (checked by export_items), no repeats
    assert len(mid) < final["items"], (len(mid), final["items"])
    final_items = items_by_url(export_items(state))
    assert set(mid) <= set(final_items)
    assert_items_match_site(list(final_items.values()), site.base, pages=PAGES)

    assert any("running; figures from" in text for text in texts), texts
    text = crawl_ok("stats", str(state)).stdout
    assert re.search(rf"\bdone\b\D*({total:,}|{total})\b", text), text
    assert "finished" in text, text


# -- export -----------------------------------------------------------------------------------


def test_export_csv_to_a_file(real_state: Path, site: Site, tmp_path: Path) -> None:
    state = tmp_path / "copy.db"
    shutil.copyfile(real_state, state)
    items = export_items(state)
    out = tmp_path / "out.csv"
    proc = crawl_ok("export", str(state), "--format", "csv", "-o", str(out))
    assert not proc.stdout.strip(), "the CSV went to stdout as well"
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        assert reader.fieldnames is not None
        assert sorted(reader.fieldnames) == ["links", "status", "title", "url"]
    assert len(rows) == len(items) == PAGES
    by_url = {item["url"]: item for item in items}
    assert len({row["url"] for row in rows}) == len(rows)
    for row in rows:
        item = by_url[row["url"]]
        assert row == {"url": item["url"], "status": str(item["status"]),
                       "title": item["title"], "links": str(item["links"])}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []


def test_export_to_a_missing_folder_is_a_clear_error(real_state: Path, tmp_path: Path) -> None:
    state = tmp_path / "copy.db"
    shutil.copyfile(real_state, state)
    out = tmp_path / "no" / "such" / "folder" / "out.csv"
    proc = crawl("export", str(state), "--format", "csv", "-o", str(out), timeout=60)
    assert proc.returncode != EXIT_OK, describe(proc)
    assert "Traceback" not in proc.stderr, f"a traceback instead of a message:\n{proc.stderr}"
    assert str(out.parent) in proc.stderr, f"the message does not name the folder:\n" \
                                           f"{proc.stderr}"
    assert not (tmp_path / "no").exists()


def _limit_file_size() -> None:
    # Files may grow to 256 KiB: past that, writes fail (EFBIG) the way a full disk does.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_a_full_disk_fails_the_crawl_cleanly_and_it_resumes(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "full.db"
    proc = subprocess.run([sys.executable, "-m", "crawler.cli", *site_command(site, state)],
                          capture_output=True, text=True, timeout=120, check=False,
                          preexec_fn=_limit_file_size)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"writing '{state}' failed" in proc.stderr
    assert "resumable" in proc.stderr
    # With room again, the same command finishes the crawl exactly.
    crawl_ok(*site_command(site, state))
    assert_items_match_site(export_items(state), site.base, pages=PAGES)
