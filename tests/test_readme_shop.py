"""The README's login + JSON API spider (`shop.py`), run as the README says, against a local
shop: a login form with a CSRF token, a session cookie, and a search API that takes POSTed
JSON and pages by a `page` field. The code is read from the README itself, so the two cannot
drift apart."""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from tests.helpers import crawl_ok, export_items
from tests.sites.serve import serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
PAGES = 3  # of search results
PER_PAGE = 4


def readme_spider() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n(# shop\.py\n.*?)```", text, re.S)
    assert found, "README.md has no ```python block starting with # shop.py"
    return found.group(1)


class Shop:
    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.sessions: set[str] = set()
        self.logins = 0
        self.searches: Counter[int] = Counter()
        self.languages: Counter[str | None] = Counter()
        self.refused: list[str] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.note_language])
        app.router.add_get("/login", self.form)
        app.router.add_post("/login", self.login)
        app.router.add_get("/account", self.account)
        app.router.add_post("/api/search", self.search)
        return app

    @web.middleware
    async def note_language(self, request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
        self.languages[request.headers.get("Accept-Language")] += 1
        return await handler(request)

    def _logged_in(self, request: web.Request) -> bool:
        return request.cookies.get("session") in self.sessions

    async def form(self, request: web.Request) -> web.Response:
        token = secrets.token_hex(8)
        self.tokens.add(token)
        return web.Response(content_type="text/html", text=(
            '<html><body><form id="search" action="/find"><input name="q"></form>'
            '<form id="login" action="/login" method="post">'
            f'<input type="hidden" name="csrf" value="{token}">'
            '<input name="user"><input name="password" type="password">'
            "<button>Log in</button></form></body></html>"))

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("csrf") not in self.tokens or (form.get("user"), form.get("password")) \
                != ("me", "pw"):
            self.refused.append(f"login {dict(form)}")
            return web.Response(status=403)
        self.logins += 1
        session = secrets.token_hex(8)
        self.sessions.add(session)
        moved = web.HTTPSeeOther("/account")  # a POST answered with 303: the crawl GETs it
        moved.set_cookie("session", session, httponly=True)
        raise moved

    async def account(self, request: web.Request) -> web.Response:
        if not self._logged_in(request):
            self.refused.append("account without a session")
            return web.Response(status=403)
        return web.Response(content_type="text/html", text="<title>Your account</title>")

    async def search(self, request: web.Request) -> web.Response:
        query = await request.json()
        if not self._logged_in(request) or request.headers.get("X-Requested-With") != "fetch":
            self.refused.append(f"search {query}")
            return web.Response(status=403)
        page = int(query["page"])
        self.searches[page] += 1
        products = [{"sku": f"{query['q']}-{page}-{i}"} for i in range(PER_PAGE)]
        return web.json_response({"products": products, "more": page < PAGES})


def test_the_readme_shop_spider_logs_in_and_pages_through_the_api(tmp_path: Path) -> None:
    shop = Shop()
    with serve_in_thread(shop.app()) as base:
        port = base.rsplit(":", 1)[1]
        # Only the site's address changes: a name (a cookie jar keeps no cookies for IP
        # addresses), mapped to the local server, on plain HTTP.
        code = readme_spider().replace("https://shop.example", f"http://shop.test:{port}")
        spider = tmp_path / "shop.py"
        spider.write_text(code, encoding="utf-8")
        state = tmp_path / "shop.db"
        crawl_ok("run", str(spider), "--state", str(state), "--resolve", "shop.test:127.0.0.1",
                 "--delay", "0", "--quiet")
    assert shop.refused == [], shop.refused
    assert shop.logins == 1
    assert shop.searches == dict.fromkeys(range(1, PAGES + 1), 1)  # each page once
    assert set(shop.languages) == {"en"}  # the spider's headers went with every request
    items = export_items(state)
    assert sorted(item["sku"] for item in items) == sorted(
        f"lamp-{page}-{i}" for page in range(1, PAGES + 1) for i in range(PER_PAGE))
