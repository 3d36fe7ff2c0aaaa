"""A crawl refused at start (a bad start URL, found before anything is fetched) leaves no
empty state file behind on a new path, and leaves an existing one as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler import SpiderError
from crawler import crawl as crawl_api
from crawler.cli.exits import EXIT_USAGE
from storage.sqlite import SQLiteStore
from tests.helpers import crawl

BAD = """
from crawler import Spider

class Bad(Spider):
    name = "bad"
    start_urls = ["ftp://example.test/"]

    async def parse(self, response):
        yield {}
"""


def test_a_spider_refused_at_start_leaves_no_state_file(tmp_path: Path) -> None:
    spider = tmp_path / "bad.py"
    spider.write_text(BAD)
    proc = crawl("run", str(spider), "--state", str(tmp_path / "bad.db"), cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "bad start URL" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.py"]


def test_a_python_api_crawl_refused_at_start_leaves_no_state_file(tmp_path: Path) -> None:
    namespace: dict[str, object] = {}
    exec(compile(BAD, "bad.py", "exec"), namespace)
    with pytest.raises(SpiderError, match="bad start URL"):
        crawl_api(namespace["Bad"], state=tmp_path / "bad.db")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


async def test_an_existing_state_file_stays_when_the_spider_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "bad.db"
    store = await SQLiteStore.open(state)
    await store.open_crawl("bad", "{}", fresh=False)
    await store.close()
    before = state.read_bytes()
    spider = tmp_path / "bad.py"
    spider.write_text(BAD)
    proc = crawl("run", str(spider), "--state", str(state), cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert state.read_bytes() == before
