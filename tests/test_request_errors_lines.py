"""A request the spider gets wrong is refused with an error naming the spider's own line
(not one inside the crawler), wherever it is made: in start_requests, in start_urls, in a
callback, through `response.follow`, `follow_all` and forms; and nothing of it is stored.
Through the real CLI, against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from crawler import Request, Response
from crawler.errors import SpiderError
from tests.helpers import EXIT_USAGE, crawl, crawl_ok
from tests.sites.serve import serve_in_thread


def _line(source: str, marker: str) -> int:
    """The line of `source` that holds the comment `# marker`."""
    return next(n for n, text in enumerate(source.splitlines(), 1) if f"# {marker}" in text)


def _rows(state: Path) -> tuple[list[str], int]:
    """The URLs of the stored requests, and how many items (none if no file was made)."""
    if not state.exists():
        return [], 0
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        urls = sorted(url for (url,) in conn.execute("SELECT url FROM requests"))
        return urls, conn.execute("SELECT count(*) FROM items").fetchone()[0]


START = textwrap.dedent("""
    from crawler import Request, Spider

    class Start(Spider):
        name = "start"

        async def start_requests(self):
            yield Request("http://127.0.0.1:9/fine")
            yield Request("http://127.0.0.1:9/bad", headers={"X": "a\\nb"})  # bad
""")


def test_a_bad_start_request_names_the_spiders_line_and_stores_nothing(tmp_path: Path) -> None:
    spider, state = tmp_path / "start.py", tmp_path / "s.db"
    spider.write_text(START)
    proc = crawl("run", str(spider), "--state", str(state))
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "the X header value 'a\\nb' holds the control character" in proc.stderr
    assert f"(at {spider}:{_line(START, 'bad')})" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _rows(state) == ([], 0)


URLS = textwrap.dedent("""
    from crawler import Spider

    class Urls(Spider):  # spider
        name = "urls"
        start_urls = ["http://127.0.0.1:9/", 5]
""")


def test_a_start_url_that_is_not_text_names_the_spider(tmp_path: Path) -> None:
    spider, state = tmp_path / "urls.py", tmp_path / "s.db"
    spider.write_text(URLS)
    proc = crawl("run", str(spider), "--state", str(state))
    assert proc.returncode == EXIT_USAGE, proc.stderr  # not a crash with a traceback
    assert "a request's URL must be text (or a yarl URL), not int 5" in proc.stderr
    assert f"(in Urls.start_urls, at {spider}:{_line(URLS, 'spider')})" in proc.stderr
    assert _rows(state) == ([], 0)


CALLBACKS = textwrap.dedent("""
    from crawler import Request, Spider

    class Callbacks(Spider):
        name = "callbacks"

        async def start_requests(self):
            for case in ("header", "method", "json", "cap", "form", "sync"):
                yield Request(f"{self.start_urls[0]}{case}", self.parse_sync
                              if case == "sync" else self.parse, cb_kwargs={"case": case})

        async def parse(self, response, case):
            yield {"case": case}
            yield response.follow(f"/ok-{case}")
            if case == "header":
                yield Request(response.url + "/x", headers={"X": "a\\nb"})  # header
            elif case == "method":
                yield response.follow("/x", method="FETCH")  # method
            elif case == "json":
                for request in response.follow_all("a", json={1, 2}):  # json
                    yield request
            elif case == "cap":
                yield response.follow("/x", body=b"x" * 1048577, method="PUT")  # cap
            else:
                yield response.form("form#nope").submit()  # form

        def parse_sync(self, response, case):
            yield {"case": case}
            yield Request(response.url + "/x", method="GET", data={"q": "1"})  # sync
""")


def test_a_bad_request_in_a_callback_names_the_spiders_line_and_stores_nothing(
        tmp_path: Path) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text="<a href='/a'>a</a><form></form>")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    spider, state = tmp_path / "callbacks.py", tmp_path / "s.db"
    spider.write_text(CALLBACKS)
    with serve_in_thread(app) as base:
        crawl_ok("run", str(spider), f"{base}/", "--state", str(state), "--delay", "0",
                 "--quiet")
    proc = crawl_ok("stats", str(state), "--failures", "20", "--json")
    failures = {URL(f["url"]).path: f for f in json.loads(proc.stdout)["recent_failures"]}
    assert len(failures) == 6, failures
    for case in ("header", "method", "json", "cap", "form", "sync"):
        message = str(failures[f"/{case}"])
        assert f"(at {spider}:{_line(CALLBACKS, case)}" in message, (case, message)
        assert "/crawler/" not in message, message  # no line of the library's
    urls, items = _rows(state)
    assert items == 0  # a failed callback stores nothing it yielded
    assert [URL(url).path for url in urls] == sorted(
        f"/{case}" for case in ("header", "method", "json", "cap", "form", "sync"))


PAGE = Response(URL("http://shop.test/"), 200, {"Content-Type": "text/html"},
                b"<a href='/a'>a</a><form method='post'><input name='q'></form>")


@pytest.mark.parametrize("make", [
    lambda: Request("http://shop.test/", method="FETCH"),
    lambda: Request(b"http://shop.test/"),  # type: ignore[arg-type]
    lambda: Request("http://shop.test/", json=float("nan")),
    lambda: PAGE.follow("/a", headers={"Host": "x"}),
    lambda: PAGE.follow("mailto:a@b.test", method="FETCH"),
    lambda: PAGE.follow_all("a", cookies={"a b": "c"}),
    lambda: PAGE.form().fill(q=object()),  # type: ignore[arg-type]
    lambda: PAGE.form().submit(headers={"X": " y"}),
    lambda: PAGE.form("#none"),
])
def test_each_entry_of_the_model_names_its_callers_line(make: object) -> None:
    with pytest.raises(SpiderError) as info:
        make()  # type: ignore[operator]
    line = info.traceback[1].lineno + 1  # the lambda's line in this file (1-based)
    message = str(info.value)
    assert message.endswith(f" (at {__file__}:{line})"), message
    assert message.count(" (at ") == 1, message
