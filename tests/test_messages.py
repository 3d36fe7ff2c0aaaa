"""What the command line says: spiders loaded from the current folder, errors at the
user's own line, `--quiet` on every command, and `--log-level DEBUG` without SQL."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from crawler import SpiderError
from crawler.cli.crawl import make_spider
from crawler.engine.opening import start_requests
from crawler.model.loader import load_spider_class
from tests.helpers import crawl, describe
from tests.sites.serve import serve_in_thread

SPIDER = '''\
import logging

from crawler import Spider

log = logging.getLogger("mine")


class Mine(Spider):
    name = "mine"

    async def parse(self, response):
        log.debug("parsed %s", response.url)
        yield {"url": response.url, "from": __name__}
        for request in response.follow_all():
            yield request
'''


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    async def page(request: web.Request) -> web.Response:
        links = "".join(f"<a href='/{n}'>{n}</a>" for n in "ab")
        return web.Response(text=f"<title>{request.path}</title>{links}",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    with serve_in_thread(app) as base:
        yield base


def _package(root: Path, *, init: bool) -> None:
    (root / "spiders").mkdir()
    if init:
        (root / "spiders" / "__init__.py").write_text("")
    (root / "spiders" / "mine.py").write_text(SPIDER)


# -- spiders from the current folder ----------------------------------------------------------


def test_a_users_spiders_package_wins_over_the_built_in_one(site: str, tmp_path: Path) -> None:
    _package(tmp_path, init=True)
    proc = crawl("run", "spiders.mine:Mine", f"{site}/", "--delay", "0", "--quiet",
                 "--state", "mine.db", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    items = crawl("export", "mine.db", cwd=tmp_path).stdout.splitlines()
    assert {json.loads(line)["from"] for line in items} == {"spiders.mine"}
    assert len(items) == 3


def test_a_spiders_folder_without_init_loads_too(tmp_path: Path) -> None:
    _package(tmp_path, init=False)
    proc = crawl("check", "spiders.mine:Mine", "http://a.test/", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert "Mine (name 'mine') from spiders.mine:Mine" in proc.stdout
    nothing = crawl("check", "spiders.nope:Mine", cwd=tmp_path)
    assert nothing.returncode == 2, describe(nothing)
    assert f"no module named 'spiders.nope' here ({tmp_path})" in nothing.stdout


# -- errors at the user's line ----------------------------------------------------------------


IMPORT_ERRORS = [
    ("from crawler import Spider\n\n\nclass A(Spider)\n    name = 'a'\n", 4,
     "SyntaxError: expected ':'"),
    ("from crawler import Spider\nimport json\n\nSETTINGS = json.loads('{')\n", 4,
     "JSONDecodeError"),
    ("from crawler import Spider\nimport no_such_module_q\n", 2,
     "ModuleNotFoundError: No module named 'no_such_module_q'"),
]


@pytest.mark.parametrize(("source", "line", "words"), IMPORT_ERRORS,
                         ids=["syntax", "raises", "imports"])
def test_an_import_error_names_the_users_file_and_line(tmp_path: Path, source: str, line: int,
                                                       words: str) -> None:
    path = tmp_path / "bad_file_q.py"
    path.write_text(source)
    with pytest.raises(SpiderError) as error:
        load_spider_class(str(path))
    assert f"{path}:{line}: {words}" in str(error.value)


def test_a_module_path_import_error_names_the_users_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "bad.py").write_text(IMPORT_ERRORS[1][0])
    proc = crawl("run", "spiders.bad:A", cwd=tmp_path)
    assert proc.returncode == 2, describe(proc)
    assert f"{tmp_path}/spiders/bad.py:4: JSONDecodeError" in proc.stderr, proc.stderr
    assert "SETTINGS = json.loads('{')" in proc.stderr and "Traceback" not in proc.stderr


def test_a_failing_constructor_names_the_users_line(tmp_path: Path) -> None:
    path = tmp_path / "boom_q.py"
    path.write_text(
        "from crawler import Spider\n\nclass Boom(Spider):\n    name = 'boom'\n\n"
        "    def __init__(self, start_urls=None):\n        super().__init__(start_urls)\n"
        "        self.limit = int('ten')\n")
    with pytest.raises(SpiderError) as error:
        make_spider(str(path), [])
    assert f"cannot create Boom(): {path}:8: ValueError: invalid literal" in str(error.value)
    assert "self.limit = int('ten')" in str(error.value)


def test_an_unknown_class_is_named_with_its_file(tmp_path: Path) -> None:
    path = tmp_path / "mine_q.py"
    path.write_text(SPIDER + "\ndef helper():\n    pass\n")
    with pytest.raises(SpiderError, match=f"no class named Nope in {path} \\(it has Mine\\)"):
        load_spider_class(f"{path}:Nope")
    with pytest.raises(SpiderError, match=f"helper in {path} is a function, not a class"):
        load_spider_class(f"{path}:helper")


# -- --quiet and --log-level ------------------------------------------------------------------


def test_quiet_says_nothing_when_nothing_is_wrong(site: str, tmp_path: Path) -> None:
    state = str(tmp_path / "q.db")
    commands = [
        ("site", f"{site}/", "--state", state, "--delay", "0"),
        ("export", state, "-o", str(tmp_path / "items.jsonl")),
        ("new", "made", f"{site}/"),
        ("check", "made.py"),  # its findings are its output, on stdout
    ]
    for command in commands:
        if command[0] in ("site", "export"):  # what --quiet silences is there without it
            loud = crawl(*command, cwd=tmp_path)
            assert loud.returncode == 0 and loud.stderr.startswith("crawl: "), describe(loud)
        quiet = crawl(*command, "--quiet", cwd=tmp_path)
        assert quiet.returncode == 0, describe(quiet)
        assert quiet.stderr == "", describe(quiet)
        assert quiet.stdout == "", quiet.stdout
    stats = crawl("stats", state, "--json")  # its output is the result: stdout only
    assert stats.returncode == 0 and stats.stderr == "" and json.loads(stats.stdout)


def test_quiet_still_shows_problems(tmp_path: Path) -> None:
    state = str(tmp_path / "dead.db")
    proc = crawl("site", "http://127.0.0.1:9/", "--state", state, "--quiet",
                 "--max-retries", "0")
    assert proc.returncode == 3, describe(proc)
    assert "nothing was fetched" in proc.stderr, proc.stderr


def test_debug_logs_the_crawler_and_the_spider_but_no_sql(site: str, tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(SPIDER)
    proc = crawl("run", "mine.py", f"{site}/", "--state", str(tmp_path / "d.db"),
                 "--delay", "0", "--log-level", "DEBUG", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert f"DEBUG mine: parsed {site}/a" in proc.stderr, proc.stderr  # the user's own
    loggers = set(re.findall(r"^\d\d:\d\d:\d\d \w+ ([\w.]+):", proc.stderr, re.M))
    assert loggers <= {"mine", "crawler", "storage"}, proc.stderr
    assert not re.search(r"\b(SELECT|INSERT|UPDATE)\b", proc.stderr), proc.stderr


def test_a_failing_start_requests_names_the_users_line(tmp_path: Path) -> None:
    path = tmp_path / "starts_q.py"
    path.write_text(
        "from crawler import Request, Spider\n\nclass Starts(Spider):\n    name = 's'\n\n"
        "    async def start_requests(self):\n        yield Request('http://a.test/')\n"
        "        pages = {}['count']\n")
    spider = make_spider(str(path), [])
    with pytest.raises(SpiderError) as error:
        asyncio.run(start_requests(spider))
    assert (f"Starts.start_requests() failed: {path}:8: KeyError: 'count'"
            in str(error.value)), error.value
