"""Sessions: the crawl's cookie jar, kept in the state file, so a crawl killed after logging in
resumes logged in. Real servers on 127.0.0.x, reached by name (aiohttp's safe jar keeps no
cookies from IP-address hosts), names mapped with `--resolve`."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import signal
import sqlite3
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from yarl import URL

from crawler import CrawlConfig, Response, Spider
from crawler.config import layered
from crawler.http.fetcher import Fetcher
from crawler.http.transport import Cookie
from storage import StoredCookie
from storage.sqlite import SQLiteStore
from storage.sqlite.ledger import CookieChanges
from tests.crawling import crawl
from tests.helpers import DONE, CrawlProcess, crawl_ok, export_items
from tests.sites.serve import serve, serve_in_thread

PRIVATE_PAGES = 12


class Shop:
    """A site behind a login: a form with a CSRF token, a login that sets a session cookie
    and redirects to the account page, and pages served only with that cookie."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.logins = 0
        self.denied = 0
        self.tokens: set[str] = set()
        self.sessions: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/login-form", self.form)
        app.router.add_get("/login", self.login)
        app.router.add_get("/account", self.account)
        app.router.add_get("/private/{n}", self.private)
        return app

    async def form(self, request: web.Request) -> web.Response:
        token = secrets.token_hex(8)
        self.tokens.add(token)
        return web.Response(content_type="text/html", text=(
            '<form action="/login" method="get"><input type="hidden" name="csrf" '
            f'value="{token}"><input name="user"><input name="password" type="password">'
            "</form>"))

    async def login(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("csrf") not in self.tokens or (q.get("user"), q.get("password")) != ("me", "pw"):
            return web.Response(status=403, text="bad login")
        self.logins += 1
        sid = secrets.token_hex(8)
        self.sessions.add(sid)
        resp = web.HTTPFound("/account")
        resp.set_cookie("session", sid, path="/", httponly=True)
        raise resp

    def _allowed(self, request: web.Request) -> bool:
        if request.cookies.get("session") in self.sessions:
            return True
        self.denied += 1
        return False

    async def account(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return web.Response(status=403, text="log in first")
        links = "".join(f'<a href="/private/{n}">{n}</a>' for n in range(PRIVATE_PAGES))
        return web.Response(content_type="text/html", text=links)

    async def private(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return web.Response(status=403, text="log in first")
        await asyncio.sleep(self.delay)
        n = request.match_info["n"]
        return web.Response(content_type="text/html", text=f"<h1>secret {n}</h1>")


SPIDER = textwrap.dedent('''
    from urllib.parse import urlencode

    from selectolax.lexbor import LexborHTMLParser

    from crawler import Request, Spider


    class Login(Spider):
        name = "login"

        async def parse(self, response):
            form = LexborHTMLParser(response.text).css_first("form")
            fields = {i.attributes["name"]: i.attributes.get("value") or ""
                      for i in form.css("input")}
            fields.update(user="me", password="pw")
            action = response.urljoin(form.attributes["action"])
            yield Request(action + "?" + urlencode(fields), self.after_login)

        async def after_login(self, response):
            for href in response.links("a[href]"):
                yield response.follow(href, self.parse_private)

        async def parse_private(self, response):
            yield {"url": response.url, "secret": response.css_first("h1").text()}
''')


def _login_done(state: Path) -> bool:
    if not state.exists():
        return False
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT state FROM requests WHERE url LIKE '%/login?%'").fetchone()
    except sqlite3.Error:  # not created yet
        return False
    return row is not None and row[0] == DONE


def _stored_cookies(state: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT name, domain, host_only FROM cookies").fetchall()


def test_killed_after_login_resumes_logged_in(tmp_path: Path) -> None:
    shop = Shop(delay=0.4)
    spider = tmp_path / "login.py"
    spider.write_text(SPIDER)
    state = tmp_path / "login.db"
    with serve_in_thread(shop.app(), "127.0.0.2") as base:
        port = URL(base).port
        command = ("run", str(spider), f"http://shop.test:{port}/login-form",
                   "--state", str(state), "--resolve", "shop.test:127.0.0.2",
                   "--delay", "0", "--per-host", "1", "--quiet")
        with CrawlProcess(*command) as proc:
            deadline = time.monotonic() + 30
            while not _login_done(state):
                assert proc.running(), proc.stderr
                assert time.monotonic() < deadline, "the login was never committed"
                time.sleep(0.02)
            proc.send(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        assert shop.logins == 1
        # The commit that holds the login's outcome holds the cookie its response set.
        assert _stored_cookies(state) == [("session", "shop.test", 1)]
        shop.delay = 0.0
        crawl_ok(*command)
    assert shop.logins == 1, "the resumed crawl logged in again"
    assert shop.denied == 0, "a request went out without the session cookie"
    secrets_found = Counter(item["secret"] for item in export_items(state))
    assert secrets_found == Counter(f"secret {n}" for n in range(PRIVATE_PAGES))


class CookieSpider(Spider):
    name = "cookies"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield response.follow("/echo", self.echo)

    async def echo(self, response: Response) -> AsyncIterator[Any]:
        yield {"cookie": response.text}


class NoCookies(CookieSpider):
    cookies = False


def cookie_app() -> web.Application:
    async def setter(request: web.Request) -> web.Response:
        resp = web.Response(content_type="text/html", text="<p>hi</p>")
        resp.set_cookie("a", "1", path="/")
        resp.set_cookie("gone", "x", path="/", max_age=0)  # expired at once: never sent
        return resp

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("Cookie", ""))

    app = web.Application()
    app.router.add_get("/", setter)
    app.router.add_get("/echo", echo)
    return app


async def test_cookies_are_sent_back_unless_turned_off(tmp_path: Path) -> None:
    async with serve(cookie_app(), "127.0.0.2") as base:
        port = URL(base).port
        start = [f"http://c.test:{port}/"]
        config = CrawlConfig(delay=0, resolve={"c.test": "127.0.0.2"})
        on = await crawl(CookieSpider(start), tmp_path / "on.db", config)
        off_spider = NoCookies(start)
        off = await crawl(off_spider, tmp_path / "off.db", layered(off_spider, base=config))
        # A cookie from an IP-address host is not kept (aiohttp's safe jar, as browsers).
        by_ip = await crawl(CookieSpider([f"{base}/"]), tmp_path / "ip.db", config)
        assert _stored_cookies(tmp_path / "on.db") == [("a", "c.test", 1)]
        # --fresh starts the crawl over: its session too.
        await crawl(off_spider, tmp_path / "on.db", layered(off_spider, base=config),
                    fresh=True)
    assert on.items == [{"cookie": "a=1"}]
    assert off.items == [{"cookie": ""}]
    assert by_ip.items == [{"cookie": ""}]
    assert _stored_cookies(tmp_path / "on.db") == []
    assert _stored_cookies(tmp_path / "off.db") == []


async def test_the_jar_gives_back_what_it_was_given_but_expired_cookies() -> None:
    later = time.time() + 3600
    kept = (Cookie("sid", "abc", "shop.test", "/", None, http_only=True),
            Cookie("pref", '"a b"', "shop.test", "/en", later, secure=True, host_only=False))
    async with Fetcher(CrawlConfig()) as fetcher:
        fetcher.load_cookies([*kept, Cookie("old", "x", "shop.test", "/", time.time() - 1)])
        back = sorted(fetcher.cookies(), key=lambda c: c.name)
    assert [c.name for c in back] == ["pref", "sid"]
    pref, sid = back
    assert sid == kept[0]
    # An Expires header keeps whole seconds.
    assert pref.expires is not None and abs(pref.expires - later) < 1
    assert pref == dataclasses.replace(kept[1], expires=pref.expires)
    async with Fetcher(CrawlConfig(cookies=False)) as fetcher:
        fetcher.load_cookies(kept)
        assert fetcher.cookies() == ()


def wide_app() -> web.Application:
    """Each host's `/` sets a session cookie and links to `/bye`, which drops it (Max-Age=0)
    and sets another under a path given with a trailing slash."""

    async def home(request: web.Request) -> web.Response:
        resp = web.Response(content_type="text/html", text='<a href="/bye">bye</a>')
        resp.set_cookie("sid", request.host.split(".")[0], max_age=3600)
        return resp

    async def bye(request: web.Request) -> web.Response:
        resp = web.Response(content_type="text/html", text="<p>bye</p>")
        resp.set_cookie("sid", "", max_age=0)
        resp.set_cookie("seen", "1", path="/bye/")
        return resp

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/bye", bye)
    return app


async def test_a_response_hands_on_only_the_cookies_it_changed() -> None:
    # The jar holds many cookies already: what crosses to the store after a response is
    # what that response set or dropped, not the whole jar (a wide crawl stays fast).
    many = [Cookie("k", str(n), f"h{n}.test", "/", None) for n in range(300)]
    async with serve(wide_app(), "127.0.0.2") as base:
        port = URL(base).port
        config = CrawlConfig(resolve={"w.test": "127.0.0.2"}, allow_private=True)
        async with Fetcher(config) as fetcher:
            fetcher.load_cookies(many)
            fetcher.changed_cookies()  # the jar as loaded
            await fetcher.fetch(URL(f"http://w.test:{port}/"))
            kept, gone = fetcher.changed_cookies()
            assert [(c.name, c.value, c.domain) for c in kept] == [("sid", "w", "w.test")]
            assert gone == []
            assert fetcher.changed_cookies() == ([], [])  # taken once
            await fetcher.fetch(URL(f"http://w.test:{port}/bye"))
            kept, gone = fetcher.changed_cookies()
            assert [(c.name, c.path) for c in kept] == [("seen", "/bye/")]
            assert gone == [("w.test", "", "sid")]
            assert len(fetcher.cookies()) == 301


async def test_the_state_file_holds_the_jar_after_changes_by_key(tmp_path: Path) -> None:
    class Wide(Spider):
        name = "wide"

        async def parse(self, response: Response) -> Any:
            for request in response.follow_all():
                yield request

    hosts = [f"h{n}.test" for n in range(6)]
    async with serve(wide_app(), "127.0.0.2") as base:
        port = URL(base).port
        config = CrawlConfig(delay=0, resolve=dict.fromkeys(hosts, "127.0.0.2"))
        state = tmp_path / "w.db"
        await crawl(Wide([f"http://{h}:{port}/" for h in hosts]), state, config)
    # Every sid was dropped by its host's /bye; a cookie set again replaced its row.
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT name, domain, path FROM cookies ORDER BY domain").fetchall()
    assert rows == [("seen", h, "/bye/") for h in hosts]


async def test_the_store_writes_each_changed_cookie_once_by_its_key(tmp_path: Path) -> None:
    def kept(name: str, value: str, path: str = "/") -> StoredCookie:
        return StoredCookie(name, value, "a.test", path, None, False, False, True)

    store = await SQLiteStore.open(tmp_path / "s.db")
    try:
        await store.open_crawl("s", "{}", fresh=False)
        store.keep_cookies([kept("sid", "1"), kept("p", "x", "/a/"), kept("old", "o")])
        await store.flush()
        # Changes between commits: the last one of each cookie is what the commit writes;
        # "/a" is the jar's key of "/a/" (one cookie), so its row is replaced, not doubled.
        store.change_cookies([kept("sid", "2")], [])
        store.change_cookies([kept("sid", "3"), kept("p", "y", "/a")], [("a.test", "", "old")])
        store.change_cookies([kept("new", "n")], [])
        await store.flush()
        assert sorted(await store.cookies()) == [
            kept("new", "n"), kept("p", "y", "/a"), kept("sid", "3")]
    finally:
        await store.close()


def test_changes_given_back_by_a_failed_commit_come_before_those_kept_since() -> None:
    def kept(value: str) -> StoredCookie:
        return StoredCookie("sid", value, "a.test", "/", None, False, False, True)

    failed, since = CookieChanges(), CookieChanges()
    failed.change([kept("1")], [("a.test", "/x/", "gone")])
    since.change([kept("2")], [])
    back = failed.then(since)
    assert back.by_key == {("a.test", "", "sid"): kept("2"), ("a.test", "/x", "gone"): None}
    assert not back.replace
    whole = CookieChanges()
    whole.whole([kept("3")])
    assert failed.then(whole) is whole  # a whole jar kept since replaces what came before
