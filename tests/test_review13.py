"""Review 13 fixes: a hostile page's text reaches no terminal raw (`crawl fetch`, `crawl
stats`, log lines) and breaks no table; `crawl fetch --css` with a bad selector is a usage
error; `crawl new` refuses a name that hides a module and writes a file that parses for any
URL; `crawl check` finds bad pipelines and converters, and never shows a traceback; a list
setting is not given a string. Real servers on 127.0.0.1, the CLI as a subprocess."""

from __future__ import annotations

import argparse
import ast
import asyncio
import signal
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from crawler import ConfigError, DropItem, Spider, SpiderError, crawl
from crawler.cli import check, new
from crawler.config import CrawlConfig, HostPolicy, host_policies_from_text, layered
from crawler.errors import message
from crawler.model.pipelines import PipelineFailed, Pipelines
from tests.helpers import crawl as run_cli
from tests.helpers import crawl_ok, describe
from tests.sites.serve import serve_in_thread

# A title that sets the terminal's title, a heading that clears the screen and writes the
# clipboard (OSC 52), a C1 CSI, a bidi override, and rich markup that closes no tag.
HOSTILE = ("<html><head><title>T\x1b]0;pwned\x07 \x9b2J</title></head><body>"
           "<h1>H\x1b[2J\x1b]52;c;ZXZpbA==\x07 [/x] \u202eevil</h1>"
           "<a href='/p/1'>1</a><a href='/p/2'>2</a></body></html>")


def _app() -> web.Application:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text=HOSTILE, content_type="text/html")

    async def robots(_: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\n")

    app = web.Application()
    app.router.add_get("/robots.txt", robots)
    app.router.add_get("/{tail:.*}", page)
    return app


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_in_thread(_app()) as base:
        yield base


def _raw_escapes(text: str) -> list[str]:
    return [c for c in text if c in "\x1b\x07\x9b\u202e"]


def test_fetch_shows_a_pages_escape_sequences_as_text(site: str) -> None:
    proc = crawl_ok("fetch", f"{site}/", "--css", "h1")
    assert not _raw_escapes(proc.stdout), proc.stdout
    assert "title     T\\x1b]0;pwned\\x07 \\x9b2J" in proc.stdout, proc.stdout
    assert "  H\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07 [/x] \\u202eevil" in proc.stdout, proc.stdout


def test_fetch_with_a_selector_lexbor_cannot_parse_is_a_usage_error(site: str) -> None:
    proc = run_cli("fetch", f"{site}/", "--css", "div[")
    assert proc.returncode == 2, describe(proc)
    assert "--css 'div[' is not a CSS selector" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


PIPELINES = textwrap.dedent("""
    from crawler import DropItem, Spider

    class Judge:
        def process(self, item):
            if item["url"].endswith("/1"):
                raise DropItem("unwanted " + item["h1"])
            if item["url"].endswith("/2"):
                raise ValueError("cannot judge [/bold] " + item["h1"])
            return item

    class Hostile(Spider):
        name = "hostile"
        delay = 0
        pipelines = [Judge()]

        async def parse(self, response):
            yield {"url": response.url, "h1": response.css_first("h1").text()}
            for request in response.follow_all("a"):
                yield request
""")


def test_stats_and_logs_show_a_pages_text_in_reasons_and_errors(site: str,
                                                                tmp_path: Path) -> None:
    (tmp_path / "hostile.py").write_text(PIPELINES)
    state = str(tmp_path / "h.db")
    ran = run_cli("run", "hostile.py", f"{site}/", "--state", state, cwd=tmp_path)
    assert ran.returncode == 0, describe(ran)
    assert "cannot judge [/bold] H\\x1b[2J" in ran.stderr, ran.stderr  # the error's log line
    assert not _raw_escapes(ran.stderr), ran.stderr
    stats = crawl_ok("stats", state, "--failures", "5")
    assert "Traceback" not in stats.stderr, stats.stderr
    assert not _raw_escapes(stats.stdout), stats.stdout
    assert "unwanted H\\x1b[2J" in stats.stdout and "[/x]" in stats.stdout, stats.stdout
    assert "cannot judge [/bold]" in stats.stdout, stats.stdout


@pytest.mark.parametrize("name", ["crawler", "json", "email", "aiohttp", "__init__"])
def test_new_refuses_a_name_that_would_hide_a_module(name: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="is the name of a Python module"):
        new.command(argparse.Namespace(name=name, url="http://a.test/"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ['http://a.test/x"""y', "http://a.test/\\N{x}",
                                 "http://a.test/it's"])
def test_new_writes_a_file_that_parses_whatever_the_url(url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    new.command(argparse.Namespace(name="odd", url=url))
    tree = ast.parse((tmp_path / "odd.py").read_text())
    found = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == "start_urls" for t in n.targets)]
    assert len(found) == 1 and isinstance(found[0], ast.List), found
    assert ast.literal_eval(found[0]).pop().startswith("http://a.test/")


CHECKED = textwrap.dedent("""
    from crawler import Spider

    class Strip:
        def process(self, item):
            return item

    class ClassGiven(Spider):
        name = "a"
        start_urls = ["http://a.test/"]
        pipelines = [Strip]

        async def parse(self, response):
            yield {}

    class NoDict(ClassGiven):
        pipelines = []
        converters = [str]

    class Raising(ClassGiven):
        pipelines = []

        @property
        def handle_statuses(self):
            raise KeyError("not today")
""")


@pytest.mark.parametrize(("cls", "said"), [
    ("ClassGiven", "ClassGiven.pipelines holds the class Strip; give an instance: Strip()"),
    ("NoDict", "NoDict.converters must be a dict of type: function, not list"),
    ("Raising", "KeyError: 'not today'"),
])
def test_check_finds_bad_pipelines_converters_and_raising_code(
        cls: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "checked.py").write_text(CHECKED)
    code = check.command(argparse.Namespace(spider=f"{tmp_path / 'checked.py'}:{cls}",
                                            urls=[], quiet=False))
    out = capsys.readouterr().out
    assert code == 2, out
    assert said in out, out


class _Listed(Spider):
    name = "listed"
    include = "/books/"  # a string, where a list of patterns is meant


class _Named(Spider):
    name = "named"


def test_a_list_setting_takes_a_list_not_a_string_nor_a_generator(tmp_path: Path) -> None:
    for value in ("/books/", (p for p in ["/books/"]), b"/books/"):
        with pytest.raises(ConfigError, match="include must be a list of str"):
            CrawlConfig().with_overrides({"include": value})
    with pytest.raises(ConfigError, match="include must be a list of str"):
        layered(_Listed())
    with pytest.raises(ConfigError, match="exclude must be a list of str"):
        crawl(_Named, state=tmp_path / "never.db", exclude="/x")  # refused before any file is made
    assert not (tmp_path / "never.db").exists()
    assert CrawlConfig().with_overrides({"include": ["/books/"]}).include == ["/books/"]


class _DropByCode:
    def process(self, item: dict[str, int]) -> dict[str, int]:
        raise DropItem(item["code"])  # type: ignore[arg-type]  # not a str: as users do


def test_a_drop_reason_that_is_not_a_string_is_counted_under_its_text() -> None:
    pipes = Pipelines([_DropByCode()], "Spider")
    kept, dropped = asyncio.run(pipes.process([{"code": 404}, {"code": 404}, {"code": 5}]))
    assert kept == [] and dropped == {"dropped: 404": 2, "dropped: 5": 1}


class _OneString(Spider):
    name = "one_string"
    start_urls = "http://a.test/"  # type: ignore[assignment]  # as users write by mistake

    async def parse(self, response: object) -> AsyncIterator[object]:
        yield {}


def test_start_urls_as_one_string_is_refused_not_split_into_characters(
        tmp_path: Path) -> None:
    with pytest.raises(SpiderError, match=r"^start_urls= must be a list of URLs, not one"):
        crawl(_Named, state=tmp_path / "never.db", start_urls="http://a.test/")  # type: ignore[arg-type]
    assert not (tmp_path / "never.db").exists()
    found = check.Findings()
    check.check_spider(_OneString(), found)
    assert any("_OneString.start_urls must be a list of URLs, not one string" in e
               for e in found.errors), found.errors


def test_host_policies_match_hosts_as_written_in_any_case_and_refuse_urls() -> None:
    # As --host-delay Example.COM=5 does: the host is matched in lower case.
    config = CrawlConfig().with_overrides(
        {"host_policies": {"Example.COM": HostPolicy(delay=5)}})
    assert config.policy_for("www.example.com") == HostPolicy(delay=5)
    assert layered(_Named(), {"host_policies": host_policies_from_text(
        [], ["Example.COM=5"])}).policy_for("example.com") == HostPolicy(delay=5)
    for key in ("https://example.com", "example.com:8080", "example.com/shop", ""):
        with pytest.raises(ConfigError, match="is not a host or domain name"):
            CrawlConfig(host_policies={key: HostPolicy(delay=5)})
    assert CrawlConfig(host_policies={"::1": HostPolicy(per_host=1)}).policy_for("::1")


def test_a_package_file_loaded_by_path_is_pointed_to_its_module_path(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "clean.py").write_text("def clean(s):\n    return s\n")
    (tmp_path / "shop" / "spider.py").write_text(textwrap.dedent("""
        from crawler import Spider
        from .clean import clean

        class Shop(Spider):
            name = "shop"
            start_urls = ["http://a.test/"]

            async def parse(self, response):
                yield {"t": clean(response.title)}
    """))
    by_file = run_cli("check", "shop/spider.py", cwd=tmp_path)
    assert by_file.returncode == 2, describe(by_file)
    assert "load it by its module path: crawl run shop.spider:CLASS" in by_file.stdout, \
        by_file.stdout
    by_module = run_cli("check", "shop.spider:Shop", cwd=tmp_path)
    assert by_module.returncode == 0, by_module.stdout


ARITY = textwrap.dedent("""
    from crawler import Spider

    class Arity(Spider):
        name = "arity"
        start_urls = ["http://a.test/"]

        async def parse(self, response, page):         # start requests pass no page
            yield response.follow("/x", self.listing, cb_kwargs={"cat": 1})
            yield response.follow("/y", self.nothing)

        async def listing(self, response, cat):        # cb_kwargs give it: fine
            yield {}

        async def nothing(self):                       # no response parameter
            yield {}
""")


def test_check_finds_callbacks_that_cannot_take_the_response(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "arity.py").write_text(ARITY)
    code = check.command(argparse.Namespace(spider=str(tmp_path / "arity.py"), urls=[],
                                            quiet=False))
    out = capsys.readouterr().out
    assert code == 2, out
    assert ("error: callback parse requires page besides the response, which only a "
            "request's cb_kwargs pass; a start request calls it without them") in out, out
    assert "error: callback nothing takes no response" in out, out
    assert "listing requires" not in out and "warning" not in out, out


class _Once(Spider):
    name = "once"
    delay = 0
    max_pages = 1

    async def parse(self, response: object) -> AsyncIterator[object]:
        yield {"ok": True}


def test_crawl_gives_the_scripts_own_signal_handlers_back(site: str, tmp_path: Path) -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        result = crawl(_Once, state=tmp_path / "once.db", start_urls=[f"{site}/"])
        assert result.counts.items >= 1, result
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)


class _Quoting:
    def process(self, item: dict[str, str]) -> dict[str, str]:
        raise ValueError(f"bad price {item['page']!r}")  # a whole page, quoted


def test_an_error_quoting_a_whole_page_is_cut_before_it_is_stored_or_logged() -> None:
    page = "<p>" * 1_000_000
    with pytest.raises(PipelineFailed) as failed:
        asyncio.run(Pipelines([_Quoting()], "Spider").process([{"page": page}]))
    text = str(failed.value)
    assert len(text) < 2200, len(text)
    whole = len(f"ValueError: bad price {page!r}")
    assert text.endswith(f"… ({whole - 2000:,} more characters)"), text[-80:]
    assert message(ValueError("short")) == "ValueError: short"
