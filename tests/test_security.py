"""What a hostile site must not make the crawler do: leave the crawl's hosts and ports (by a
link, a <base href>, a redirect or robots.txt's redirects), send credentials found in links,
or ask again for an answer that is the same every time. Real servers on 127.0.0.x."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from crawler import CrawlConfig
from crawler.errors import ConfigError
from spiders.site import SiteSpider
from storage import NewRequest, RequestState
from storage.sqlite import SQLiteStore
from tests.crawling import crawl
from tests.helpers import crawl as crawl_cli
from tests.sites.serve import serve

DONE, FAILED = RequestState.DONE, RequestState.FAILED
CONFIG = CrawlConfig(delay=0, retry_backoff=0.01, max_retries=2, workers=4, timeout=5.0)


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html")


@asynccontextmanager
async def _internal(host: str = "127.0.0.2") -> AsyncIterator[tuple[str, list[str]]]:
    """A server the crawl must never reach: it records every request it gets."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        return web.Response(text="secret=hunter2")

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    async with serve(app, host) as base:
        yield base, seen


def _site(pages: dict[str, Callable[[web.Request], web.StreamResponse]]
          ) -> tuple[web.Application, Counter[str], list[web.Request]]:
    hits: Counter[str] = Counter()
    requests: list[web.Request] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits[request.raw_path] += 1
        requests.append(request)
        answer = pages.get(request.path)
        if answer is None:
            return _html("<title>page</title>")
        return answer(request)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app, hits, requests


def _redirect(to: str) -> Callable[[web.Request], web.StreamResponse]:
    def answer(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(to)
    return answer


async def test_robots_txt_redirects_never_leave_the_scope(tmp_path: Path) -> None:
    # An SSRF: the site answers /robots.txt with a redirect to another host and port.
    async with _internal() as (internal, seen):
        app, hits, _ = _site({
            "/robots.txt": _redirect(f"{internal}/internal/admin?token=1"),
            "/": lambda r: _html('<a href="/a">a</a>'),
        })
        async with serve(app) as base:
            out = await crawl(SiteSpider([base + "/"]), tmp_path / "c.db", CONFIG)
    assert seen == []
    assert hits["/robots.txt"] == 1 and hits["/a"] == 1  # unavailable: everything allowed
    assert not any("hunter2" in (error or "") for _, _, error, _ in out.rows.values())


async def test_robots_txt_redirects_within_the_scope_are_followed(tmp_path: Path) -> None:
    app, hits, _ = _site({
        "/robots.txt": _redirect("/moved/robots.txt"),
        "/moved/robots.txt": lambda r: web.Response(text="User-agent: *\nDisallow: /b\n"),
        "/": lambda r: _html('<a href="/a">a</a><a href="/b">b</a>'),
    })
    async with serve(app) as base:
        out = await crawl(SiteSpider([base + "/"]), tmp_path / "c.db", CONFIG)
    assert hits["/moved/robots.txt"] == 1 and hits["/a"] == 1 and hits["/b"] == 0
    assert out.result.counts.counters["skipped_robots"] == 1


async def test_other_ports_of_the_same_host_are_outside_the_scope(tmp_path: Path) -> None:
    # Same address, another port: a link, a <base href> and a redirect all point there.
    async with _internal("127.0.0.1") as (internal, seen):
        port = internal.rsplit(":", 1)[1]
        app, hits, _ = _site({
            "/": lambda r: _html(f'<a href="http://127.0.0.1:{port}/link">x</a>'
                                 f'<a href="/based">b</a><a href="/jump">j</a>'),
            "/based": lambda r: _html(f'<base href="http://127.0.0.1:{port}/"><a href="rel">r</a>'),
            "/jump": _redirect(f"http://127.0.0.1:{port}/moved"),
        })
        async with serve(app) as base:
            out = await crawl(SiteSpider([base + "/"]), tmp_path / "c.db", CONFIG)
    assert seen == []
    assert hits["/based"] == 1 and hits["/jump"] == 1
    assert out.result.counts.counters["skipped_offsite"] == 3


async def test_a_queued_request_outside_the_scope_is_refused_when_fetched(tmp_path: Path) -> None:
    # The last guard: whatever is in the state file (an older version's rows), a request
    # outside the scope is not sent; it fails with the reason.
    async with _internal("127.0.0.1") as (internal, seen):
        app, _, _ = _site({})
        async with serve(app) as base:
            store = await SQLiteStore.open(tmp_path / "c.db")
            await store.open_crawl("site", "{}", fresh=False)
            await store.add([NewRequest(f"{internal}/queued")])
            await store.close()
            out = await crawl(SiteSpider([base + "/"]), tmp_path / "c.db", CONFIG)
    assert seen == []
    state, _, error, _ = out.rows[f"{internal}/queued"]
    assert state == FAILED and error is not None and error.startswith("offsite: ")


async def test_credentials_in_links_are_stripped_counted_and_never_sent(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app, hits, requests = _site({
        "/": lambda r: _html('<a href="http://user:secret@127.0.0.1:{port}/private">p</a>'
                             .replace("{port}", str(r.url.port)) + '<a href="/b">b</a>'),
    })
    async with serve(app) as base:
        start = base.replace("http://", "http://me:pw@") + "/"
        out = await crawl(SiteSpider([start]), tmp_path / "c.db", CONFIG)
    assert hits["/private"] == 1 and hits["/"] == 1
    assert all("Authorization" not in r.headers for r in requests)
    assert not any("secret" in url or "pw@" in url for url in out.rows)
    assert out.result.counts.counters["stripped_credentials"] == 1
    assert "start URL http://127.0.0.1" in caplog.text and "never sends credentials" in caplog.text


async def test_a_lone_percent_sign_is_sent_as_the_page_wrote_it(tmp_path: Path) -> None:
    app, hits, _ = _site({"/": lambda r: _html('<a href="/%zz">z</a><a href="/100%">c</a>')})
    async with serve(app) as base:
        await crawl(SiteSpider([base + "/"]), tmp_path / "c.db", CONFIG)
    assert hits["/%zz"] == 1 and hits["/100%"] == 1
    assert hits["/%25zz"] == 0


@pytest.mark.parametrize(("path", "headers", "body"), [
    ("/br", {"Content-Encoding": "br", "Content-Type": "text/html"}, b"\x00\x01not brotli"),
    ("/headers", {f"X-Header-{i}": "v" for i in range(200)}, b"<title>x</title>"),
])
async def test_an_answer_that_cannot_be_used_is_final_not_retried(
        tmp_path: Path, path: str, headers: dict[str, str], body: bytes) -> None:
    def closing(text: str) -> web.Response:
        response = _html(text)
        response.force_close()  # the next request has a fresh connection: nothing left over
        return response

    # On a fresh connection, and on the keep-alive connection the page before it used.
    app, hits, _ = _site({
        "/": lambda r: _html(f'<a href="{path}">x</a><a href="/fresh">f</a>'),
        "/fresh": lambda r: closing(f'<a href="{path}?fresh">x</a>'),
        path: lambda r: web.Response(body=body, headers=headers),
    })
    async with serve(app) as base:
        out = await crawl(SiteSpider([base + "/"]), tmp_path / "c.db",
                          CrawlConfig(delay=0, retry_backoff=0.01, max_retries=3, per_host=1,
                                      workers=1))
    for url in (base + path, base + path + "?fresh"):
        state, _, error, attempts = out.rows[url]
        assert (state, attempts) == (FAILED, 1), (url, error)
        assert error is not None and error.startswith("bad_response: ")
    assert hits[path] == hits[path + "?fresh"] == 1  # each sent once


@pytest.mark.parametrize("agent", ["a\r\nX-Injected: 1", "a\nb", "a\x00b", " padded"])
def test_a_header_value_that_is_not_one_line_is_refused_at_the_edge(agent: str) -> None:
    with pytest.raises(ConfigError, match="User-Agent"):
        CrawlConfig(user_agent=agent)
    if "\x00" in agent:
        return  # no command line can hold a NUL
    proc = crawl_cli("site", "http://127.0.0.1:9/", "--user-agent", agent, "--state",
                     "/nonexistent/never-created.db", timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "User-Agent header value" in proc.stderr and "Traceback" not in proc.stderr
