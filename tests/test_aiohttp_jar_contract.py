"""What crawler.http.session.CountingJar relies on inside aiohttp's CookieJar, which is not
aiohttp's public API: `_update_cookies`, `_delete_cookies`, `_do_expiration`, `_cookies` and
`_expirations`. An aiohttp upgrade that changes any of them fails here, by name, rather than
leaving a crawl that silently stops saving its session in the state file."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from http.cookies import Morsel
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from crawler import CrawlConfig
from crawler.http.fetcher import Fetcher
from crawler.http.session import CountingJar
from tests.sites.serve import serve

BROKEN = ("aiohttp {version} changed CookieJar.{name}, a private API CountingJar "
          "(crawler/http/session.py) overrides or reads: {why}")


def _broken(name: str, why: str) -> str:
    return BROKEN.format(version=aiohttp.__version__, name=name, why=why)


def _params(method: Callable[..., Any]) -> list[inspect.Parameter]:
    return list(inspect.signature(method).parameters.values())


def test_the_private_methods_have_the_signatures_we_call() -> None:
    for name, positional in (("_update_cookies", ["self", "cookies", "response_url"]),
                             ("_delete_cookies", ["self", "to_del"]),
                             ("_do_expiration", ["self"])):
        method = getattr(aiohttp.CookieJar, name, None)
        assert callable(method), _broken(name, "it is gone")
        params = _params(method)
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        assert names == positional, _broken(name, f"its parameters are now {params}")
        # Ours passes any keyword options on unchanged; a new required one would be ours to give.
        required = [p.name for p in params if p.kind is p.KEYWORD_ONLY
                    and p.default is p.empty and p.name != "copy_morsels"]
        assert not required, _broken(name, f"it now requires {required}")


async def test_the_private_attributes_hold_what_we_read() -> None:
    jar = CountingJar()
    morsel: Morsel[str] = Morsel()
    morsel.set("sid", "1", "1")
    morsel["path"] = "/app/"
    morsel["max-age"] = "60"
    jar.update_cookies({"sid": morsel}, URL("http://a.test/app/x"))
    cookies = getattr(jar, "_cookies", None)
    assert cookies is not None, _broken("_cookies", "it is gone")
    # Filed by (domain, path without its trailing slashes), then by name.
    assert ("a.test", "/app") in cookies and "sid" in cookies[("a.test", "/app")], \
        _broken("_cookies", f"it files cookies as {list(cookies)}")
    deadlines = getattr(jar, "_expirations", None)
    assert isinstance(deadlines, dict), _broken("_expirations", "it is gone")
    deadline = deadlines.get(("a.test", "/app", "sid"))
    assert deadline is not None and abs(deadline - (time.time() + 60)) < 5, \
        _broken("_expirations", f"it no longer maps (domain, path, name) to a deadline: "
                f"{deadlines}")


def _taken(jar: CountingJar) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    kept, gone = jar.take_changed()
    return {c.name: c.value for c in kept}, sorted(gone)


def setter_app() -> web.Application:
    async def home(request: web.Request) -> web.Response:
        resp = web.Response(text="hi")
        resp.set_cookie("from_server", "s", path="/")
        resp.set_cookie("short", "x", path="/", max_age=1)
        return resp

    app = web.Application()
    app.router.add_get("/", home)
    return app


async def test_every_change_to_the_jar_shows_in_take_changed() -> None:
    why = ("a cookie changed without passing through the overrides of _update_cookies, "
           "_delete_cookies or _do_expiration")
    async with serve(setter_app(), "127.0.0.2") as base:
        config = CrawlConfig(resolve={"j.test": "127.0.0.2"}, allow_private=True)
        async with Fetcher(config) as fetcher:
            jar = fetcher._jar
            assert isinstance(jar, CountingJar)
            # A Set-Cookie from a real server (update_cookies_from_headers).
            await fetcher.fetch(URL(f"http://j.test:{URL(base).port}/"))
            set_at = time.monotonic()
            assert _taken(jar) == ({"from_server": "s", "short": "x"}, []), _broken(
                "_update_cookies", why)
            # update_cookies, and a cookie replaced by another value.
            jar.update_cookies({"mine": "1"}, URL("http://j.test/"))
            jar.update_cookies({"from_server": "t"}, URL("http://j.test/"))
            assert _taken(jar) == ({"mine": "1", "from_server": "t"}, []), _broken(
                "_update_cookies", why)
            # A Max-Age run out: taken as gone (take_changed runs _do_expiration).
            await asyncio.sleep(max(0.0, set_at + 1.05 - time.monotonic()))
            assert _taken(jar) == ({}, [("j.test", "", "short")]), _broken(
                "_do_expiration/_delete_cookies", why)
            assert sorted(c.name for c in fetcher.cookies()) == ["from_server", "mine"]
