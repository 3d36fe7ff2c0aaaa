"""Feeds (`-o FILE`): the items written out while crawling, each committed item exactly
once, in commit order, across kill -9 and resume; byte for byte what `crawl export` writes.

The `crawl` command runs as a subprocess against the generated site on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import io
import json
import random
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import crawler
from crawler import CrawlConfig, Spider, feeds
from crawler.cli.export import export
from crawler.config import layered
from crawler.errors import ConfigError
from storage import Completion, FeedMark, NewRequest
from storage.sqlite import SQLiteStore
from tests.crawling import FAST, crawl, titled_pages_app
from tests.helpers import (
    EXIT_USAGE,
    CrawlProcess,
    Site,
    crawl_ok,
    describe,
    site_command,
    throttled_site,
    unthrottled,
)
from tests.helpers import crawl as run_crawl
from tests.sites import catalog
from tests.sites.serve import serve
from tests.test_pipelines import Catalog, DropDuplicates, Strip, Validate

PAGES = 300  # of the generated site: a crawl of it takes well under a second
FEEDS = ("items.jsonl", "items.json", "items.csv")


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with throttled_site(PAGES) as served:
        yield served


@pytest.fixture(autouse=True)
def _fast_again(site: Site) -> Iterator[None]:
    yield from unthrottled(site)


def feed_args(folder: Path) -> list[str]:
    return [arg for name in FEEDS for arg in ("-o", str(folder / name))]


async def exported_async(state: Path, fmt: str) -> bytes:
    """What `crawl export --format FMT -o FILE` writes (the same function, in-process)."""
    store = await SQLiteStore.open(state, readonly=True)
    try:
        out = io.StringIO(newline="")
        await export(store, fmt, out)
    finally:
        await store.close()
    return out.getvalue().encode()


def exported(state: Path, fmt: str) -> bytes:
    return asyncio.run(exported_async(state, fmt))


def assert_feeds_equal_export(state: Path, folder: Path) -> None:
    for name in FEEDS:
        fmt = name.rsplit(".", 1)[1]
        written = (folder / name).read_bytes()
        assert written == exported(state, fmt), f"{name} differs from crawl export --format {fmt}"


def test_three_formats_equal_the_export(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    crawl_ok(*site_command(site, state, *feed_args(tmp_path)))
    assert_feeds_equal_export(state, tmp_path)
    lines = (tmp_path / "items.jsonl").read_text(encoding="utf-8").splitlines()
    array = json.loads((tmp_path / "items.json").read_text(encoding="utf-8"))
    assert [json.loads(line) for line in lines] == array
    assert len(array) == PAGES and len({item["url"] for item in array}) == PAGES
    rows = list(csv.reader(io.StringIO((tmp_path / "items.csv").read_text(encoding="utf-8"),
                                       newline="")))
    assert rows[0] == ["url", "status", "title", "links"]
    assert [row[0] for row in rows[1:]] == [item["url"] for item in array]


def wait_for_growth(path: Path, size: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > size):
        assert time.monotonic() < deadline, f"{path} was not written to"
        time.sleep(0.02)


def test_three_kills_at_random_moments_then_resume(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "killed.db"
    command = site_command(site, state, "--workers", "4", "--per-host", "4",
                           *feed_args(tmp_path))
    site.throttle.delay = 0.08  # about 50 pages a second: each run is caught unfinished
    rng = random.Random(13)
    feed = tmp_path / "items.jsonl"
    for _ in range(3):
        size = feed.stat().st_size if feed.exists() else 0
        with CrawlProcess(*command) as proc:
            proc.wait_started()
            wait_for_growth(feed, size)  # this run writes the feeds: now kill it at random
            time.sleep(rng.uniform(0.0, 0.9))
            assert proc.running(), proc.stderr
            proc.send(signal.SIGKILL)
            assert proc.wait() == -signal.SIGKILL
        site.throttle.wait_idle()
        json.loads((tmp_path / "items.json").read_text(encoding="utf-8"))  # whole, always
    site.throttle.delay = 0.0
    last = crawl_ok(*command)
    assert "writing it anew" not in last.stderr, last.stderr  # a kill is not an edit
    assert_feeds_equal_export(state, tmp_path)
    assert len(json.loads((tmp_path / "items.json").read_text(encoding="utf-8"))) == PAGES


def test_feeds_spoilt_between_runs_are_written_anew_and_said_so(site: Site,
                                                                tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    command = site_command(site, state, *feed_args(tmp_path))
    crawl_ok(*command)
    (tmp_path / "items.jsonl").unlink()
    json_feed = tmp_path / "items.json"
    json_feed.write_bytes(json_feed.read_bytes()[:100])
    csv_feed = tmp_path / "items.csv"
    csv_feed.write_bytes(csv_feed.read_bytes().replace(b"Page", b"PAGE", 1))  # same length
    again = crawl_ok(*command)
    for name, why in (("items.jsonl", "is missing"), ("items.json", "is shorter"),
                      ("items.csv", "was changed since it was written")):
        assert f"output {tmp_path / name} {why}" in again.stderr, again.stderr
    assert again.stderr.count("writing it anew from the state file") == 3, again.stderr
    assert_feeds_equal_export(state, tmp_path)
    assert "writing it anew" not in crawl_ok(*command).stderr  # intact ones go on


def test_a_partial_write_after_the_mark_is_cut_off_without_a_word(site: Site,
                                                                  tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    command = site_command(site, state, *feed_args(tmp_path))
    crawl_ok(*command)
    for name in FEEDS:  # what a kill between a write and its mark's commit leaves
        with (tmp_path / name).open("ab") as fh:
            fh.write(b'{"url": "http://127.0.0.1/half')
    again = crawl_ok(*command, "--log-level", "INFO")
    assert "writing it anew" not in again.stderr
    assert "bytes written after its last committed item" in again.stderr
    assert_feeds_equal_export(state, tmp_path)


def test_stdout_feeds(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    out = crawl_ok(*site_command(site, state, "-o", "-")).stdout
    assert out.encode() == exported(state, "jsonl")
    assert len(out.splitlines()) == PAGES
    # CSV is written when the run ends (its header needs every item's fields); here the
    # crawl is complete, and the run writes what it holds.
    out = crawl_ok(*site_command(site, state, "-o", "-", "--output-format", "csv")).stdout
    assert out == exported(state, "csv").decode().replace("\r\n", "\n")  # text mode's
    assert out.startswith("url,status,title,links\n") and len(out.splitlines()) == PAGES + 1
    out = crawl_ok(*site_command(site, state, "--output", "-", "--output-format", "json")).stdout
    assert out.encode() == exported(state, "json")


def test_outputs_that_cannot_be_written_are_refused_before_crawling(site: Site,
                                                                   tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    before = site.requests()
    missing = tmp_path / "no" / "such" / "items.jsonl"
    for args, words in [
        (["-o", str(missing)], f"the folder {missing.parent} does not exist"),
        (["-o", str(tmp_path / "items.txt")], "cannot tell its format from its extension"),
        (["-o", "a.csv", "--output-format", "xml"], "output_format must be one of"),
        (["-o", str(tmp_path / "a.csv"), "-o", str(tmp_path / "a.csv")], "is given twice"),
    ]:
        proc = run_crawl(*site_command(site, state, *args))
        assert proc.returncode == EXIT_USAGE, describe(proc)
        assert words in proc.stderr, proc.stderr
    assert not state.exists(), "refused before the state file was made"
    assert site.requests() == before, "nothing fetched"


def test_a_feed_another_process_writes_is_refused(site: Site, tmp_path: Path) -> None:
    feed = tmp_path / "items.jsonl"
    with feed.open("w") as held:  # as a running crawl holds its feed
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = run_crawl(*site_command(site, tmp_path / "s.db", "-o", str(feed)))
    assert proc.returncode == EXIT_USAGE, describe(proc)
    assert f"output {feed} is being written by another process" in proc.stderr, proc.stderr


# -- in-process: the store's marks, new CSV columns mid-crawl, a spider's own output -------


async def test_marks_are_committed_with_the_next_commit_and_dropped_by_fresh(
        tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = await SQLiteStore.open(path)
    try:
        await store.open_crawl("s", "{}", fresh=False)
        await store.add([NewRequest("http://127.0.0.1/")])
        (lease,) = await store.claim(1, time.time())
        await store.record(Completion(lease.id, 200, ['{"a":1}', '{"a":2}']))
        assert await store.items_after(0, 10) == []  # not committed yet
        await store.flush()
        rows = await store.items_after(0, 10)
        assert [text for _, text in rows] == ['{"a":1}', '{"a":2}']
        assert await store.items_after(rows[0][0], 10) == rows[1:]
        mark = FeedMark("/x/items.jsonl", "jsonl", rows[-1][0], 16, 7, "")
        store.keep_feed_mark(mark)
        assert await store.feed_marks() == {}
        await store.flush()
        assert await store.feed_marks() == {mark.name: mark}
        await store.finish_run("finished")
        await store.open_crawl("s", "{}", fresh=True)
        assert await store.feed_marks() == {}
        assert await store.items_after(0, 10) == []
    finally:
        await store.close()


class Widening(Spider):
    """Items that gain a field as the crawl goes: the CSV feed's header grows."""

    name = "widening"
    output = ("items.csv", "items.json")

    async def parse(self, response: Any) -> AsyncIterator[Any]:
        n = int(response.url.rsplit("/", 1)[1] or 0)
        yield {"n": n, **({f"extra{n % 7}": "=x"} if n > 3 else {})}
        if n < 40:
            yield response.follow(f"/{n + 1}", self.parse)


async def test_a_new_csv_column_mid_crawl_rewrites_the_feed(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.chdir(tmp_path)  # the spider's outputs are relative: here
    async with serve(titled_pages_app()) as base:
        spider = Widening([base + "/"])
        config = layered(spider, base=CrawlConfig(**{
            k: getattr(FAST, k) for k in ("delay", "per_host", "workers", "timeout")}))
        assert config.output == ("items.csv", "items.json")
        await crawl(spider, tmp_path / "w.db", config)
    for name, fmt in (("items.csv", "csv"), ("items.json", "json")):
        assert (tmp_path / name).read_bytes() == await exported_async(tmp_path / "w.db", fmt)
    header = (tmp_path / "items.csv").read_bytes().decode().split("\r\n", 1)[0]
    assert header.split(",")[0] == "n" and len(header.split(",")) == 8


async def test_a_pipelines_feed_and_the_state_file_agree(tmp_path: Path) -> None:
    feed = tmp_path / "kept.jsonl"
    async with serve(catalog.make_app()) as base:
        spider = Catalog([base + "/"], [Strip(), Validate(), DropDuplicates("sku")])
        result = await crawler.crawl_async(spider, state=tmp_path / "c.db", delay=0,
                                           output=[str(feed)])
    dropped = len(catalog.NO_PRICE) + len(catalog.SAME_SKU)
    assert result.counts.items == catalog.PRODUCTS - dropped
    assert feed.read_bytes() == await exported_async(tmp_path / "c.db", "jsonl")
    assert len(feed.read_bytes().splitlines()) == result.counts.items


def test_outputs_are_checked_before_a_crawl_whatever_runs_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot tell its format"):
        feeds.check(CrawlConfig(output=("items.xml",)))
    with pytest.raises(ConfigError, match="output must be a list"):  # not one per letter
        CrawlConfig(output="items.jsonl")  # type: ignore[arg-type]
    feeds.check(CrawlConfig(output=("items.xml",), output_format="json"))
    with pytest.raises(ConfigError, match="does not exist"):  # the Python API's way in
        crawler.crawl(Widening, state=tmp_path / "x.db", output=[str(tmp_path / "no/x.csv")])
    assert not (tmp_path / "x.db").exists()
