"""The tools a spider is written with: `crawl --version`, `crawl fetch`, `crawl new`,
`crawl check`; against a real local site, through the command line."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from crawler import ConfigError
from crawler.cli import benchmark, check, new
from crawler.cli.parser import build
from crawler.cli.version import checkout_version
from tests.helpers import crawl, describe
from tests.sites.serve import serve_in_thread

ROBOTS = "User-agent: *\nDisallow: /private\n"
LATIN = ("<html><head><meta charset='iso-8859-1'><title> Caf\xe9\n menu </title></head>"
         "<body><h1>Soupe  du\njour</h1><h1>Cr\xe8me br\xfbl\xe9e</h1>"
         "<a href='/a'>a</a><a href='/b'>b</a></body></html>")


def _app() -> web.Application:
    async def robots(_: web.Request) -> web.Response:
        return web.Response(text=ROBOTS)

    async def latin(_: web.Request) -> web.Response:
        return web.Response(body=LATIN.encode("latin-1"), content_type="text/html")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"<title>{request.path}</title><a href='/a'>a</a>"
                            "<a href='/b'>b</a><a href='/c'>c</a>", content_type="text/html")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/latin")

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{request.url.port}/")

    async def missing(_: web.Request) -> web.Response:
        return web.Response(status=404, text="<title>Not here</title>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/robots.txt", robots)
    app.router.add_get("/latin", latin)
    app.router.add_get("/moved", moved)
    app.router.add_get("/away", away)
    app.router.add_get("/missing", missing)
    app.router.add_get("/{tail:.*}", page)
    return app


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_in_thread(_app()) as base:
        yield base


# -- crawl --version --------------------------------------------------------------------------


def test_version_names_the_version_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as end:
        build().parse_args(["--version"])
    assert end.value.code == 0
    out = capsys.readouterr().out
    assert re.match(r"crawl \d+\.\d+\.\d+ \(.*Python 3\.", out), out


def test_a_checkout_version_is_read_from_its_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "crawler"\nversion = "9.8.7"\n')
    assert checkout_version(pyproject) == "9.8.7"
    pyproject.write_text('[project]\nname = "other"\nversion = "1.0"\n')
    assert checkout_version(pyproject) is None
    assert checkout_version(tmp_path / "none.toml") is None


# -- crawl fetch ------------------------------------------------------------------------------


def test_fetch_follows_a_redirect_and_prints_the_matched_text(site: str) -> None:
    proc = crawl("fetch", f"{site}/moved", "--css", "h1", "--css", "p.none")
    assert proc.returncode == 0, describe(proc)
    out = proc.stdout
    assert f"redirect  301 {site}/moved -> {site}/latin" in out, out
    assert f"url       {site}/latin\n" in out, out
    # <meta charset="iso-8859-1"> means windows-1252, as browsers read it (WHATWG)
    assert "status    200" in out and "charset   cp1252" in out, out
    assert "title     Caf\xe9 menu" in out, out  # decoded, whitespace collapsed
    assert "css 'h1': 2 matches\n  Soupe du jour\n  Cr\xe8me br\xfbl\xe9e" in out, out
    assert "css 'p.none': 0 matches" in out, out
    assert "Content-Type: text/html" in out, out


def test_fetch_obeys_robots_txt_unless_told_not_to(site: str) -> None:
    refused = crawl("fetch", f"{site}/private/x", "--json")
    assert refused.returncode == 4, describe(refused)
    report = json.loads(refused.stdout)
    assert "disallows" in report["stopped"] and "status" not in report, report
    allowed = crawl("fetch", f"{site}/private/x", "--ignore-robots", "--json",
                    "--css", "a")
    assert allowed.returncode == 0, describe(allowed)
    report = json.loads(allowed.stdout)
    assert report["title"] == "/private/x" and report["css"] == {"a": ["a", "b", "c"]}


def test_fetch_exit_statuses_say_what_happened(site: str) -> None:
    offsite = crawl("fetch", f"{site}/away")  # a crawl would not follow it
    assert offsite.returncode == 5, describe(offsite)
    assert "outside the crawl's hosts" in offsite.stdout, offsite.stdout
    missing = crawl("fetch", f"{site}/missing", "--json")
    assert missing.returncode == 6, describe(missing)
    assert json.loads(missing.stdout)["status"] == 404
    dead = crawl("fetch", "http://127.0.0.1:9/")
    assert dead.returncode == 1, describe(dead)
    assert "cannot connect" in dead.stdout, dead.stdout


def test_fetch_resolves_names_and_allows_private_starts_as_a_crawl_does(site: str) -> None:
    # A name that --resolve points at loopback: the start URL is private (it resolves
    # there), so a crawl of it may connect there, and so may `crawl fetch`.
    port = site.rsplit(":", 1)[1]
    proc = crawl("fetch", f"http://shop.test:{port}/a", "--resolve", "shop.test:127.0.0.1",
                 "--json")
    assert proc.returncode == 0, describe(proc)
    assert json.loads(proc.stdout)["title"] == "/a"


# -- crawl new --------------------------------------------------------------------------------


def test_new_writes_a_spider_that_runs_and_refuses_to_overwrite(site: str,
                                                                 tmp_path: Path) -> None:
    made = crawl("new", "my_site", f"{site}/", cwd=tmp_path)
    assert made.returncode == 0, describe(made)
    spider = tmp_path / "my_site.py"
    source = spider.read_text()
    assert "class MySite(Spider):" in source and "#" in source
    again = crawl("new", "my_site", "http://other.test/", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr, describe(again)
    assert spider.read_text() == source  # untouched

    checked = crawl("check", "my_site.py", cwd=tmp_path)
    assert checked.returncode == 0, describe(checked)
    ran = crawl("run", "my_site.py", "--delay", "0", "--quiet", cwd=tmp_path)
    assert ran.returncode == 0, describe(ran)
    assert ran.stderr == "", ran.stderr  # --quiet: nothing went wrong, nothing is said
    with sqlite3.connect(tmp_path / "my_site.crawl.db") as db:
        items = [json.loads(d) for (d,) in db.execute("SELECT data FROM items")]
    assert {i["url"] for i in items} == {f"{site}/", f"{site}/a", f"{site}/b", f"{site}/c"}
    assert {i["title"] for i in items} >= {"/a", "/b"}


def test_new_refuses_a_name_that_is_no_identifier(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("my-site", "class", "3d"):
        with pytest.raises(ConfigError, match="cannot name a spider"):
            new.command(argparse.Namespace(name=name, url="http://a.test/"))
    assert list(tmp_path.iterdir()) == []
    assert new.class_name("book_prices") == "BookPrices"
    assert new.class_name("spider") == "SpiderSpider"


# -- crawl check ------------------------------------------------------------------------------

BROKEN = '''\
from crawler import Request, Spider


class Broken(Spider):
    name = "broken"
    start_urls = ["http://a.test/", "mailto:me@a.test"]
    dealy = 2.0                      # a typo: not a setting
    dns_ttl = 5                      # a setting only the command line sets
    max_pages = -1                   # out of bounds

    def parse(self, response):       # returns a dict: refused
        return {"url": response.url}

    async def parse_list(self, response):
        yield response.follow("/x", self.parse_item, errback=self.on_error)

    async def on_error(self, failure):
        yield {"failed": failure.url}
'''


def _check(capsys: pytest.CaptureFixture[str], spider: str, *, quiet: bool = False,
           ) -> tuple[int, str]:
    code = check.command(argparse.Namespace(spider=spider, urls=[], quiet=quiet))
    return code, capsys.readouterr().out


def test_check_reports_what_is_wrong_without_crawling(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.py").write_text(BROKEN)
    code, out = _check(capsys, str(tmp_path / "broken.py"))
    assert code == 2, out
    assert "max_pages must be at least 0" in out, out
    assert "bad start URL" in out, out
    assert "Broken.dealy looks like a misspelt setting: did you mean delay?" in out, out
    assert "dns_ttl is a setting a spider cannot set" in out, out
    assert "parse" in out and "returns a dict" in out, out
    assert "self.parse_item, which it does not have" in out, out
    assert "callback on_error: async def ... yield" in out, out
    assert not list(tmp_path.glob("*.db")), "check must not open a state file"


def test_check_of_a_good_spider_and_of_no_spider(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(capsys, "spiders/books.py")
    assert code == 0, out
    assert "callback parse_book: async def ... yield" in out, out
    assert out.rstrip().endswith("ok"), out
    assert _check(capsys, "spiders/books.py", quiet=True) == (0, "")
    other = tmp_path / "other.py"
    other.write_text("class Books:\n    pass\n")
    code, out = _check(capsys, f"{other}:Nope")
    assert code == 2 and f"no class named Nope in {other}" in out, out
    code, out = _check(capsys, f"{other}:Books")
    assert code == 2, out
    assert f"Books in {other} is a class, but not a Spider subclass" in out, out


# -- packaging --------------------------------------------------------------------------------


def test_a_wheel_installs_only_the_crawler_its_store_and_spiders() -> None:
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {name.split(".")[0] for name in included} == {"crawler", "storage", "spiders"}


def test_bench_finds_its_site_in_the_checkout(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    # As a wheel would be: benchsite is not importable.
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "benchsite" else real(name, *a))
    env = benchmark._with_checkout()
    assert str(benchmark.CHECKOUT) in env["PYTHONPATH"].split(os.pathsep)
    monkeypatch.setattr(benchmark, "CHECKOUT", tmp_path)  # installed, no checkout
    with pytest.raises(ConfigError, match="--url"):
        benchmark._with_checkout()
