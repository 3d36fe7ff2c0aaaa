"""Review 12 fixes: `--log-level DEBUG` logs no secret, and dont_filter start requests are
seeded once a crawl, not once a run. Real servers on 127.0.0.2, names mapped with
`--resolve`, the CLI run as a subprocess."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

from aiohttp import web
from yarl import URL

from storage import NewRequest
from storage.sqlite.writes import request_fingerprint
from tests.helpers import crawl_ok
from tests.sites.serve import serve_in_thread

PROXY_PASSWORD = "PXPASS9"
TOKEN = "TOK3N7"
LOGIN_PASSWORD = "HUNTER27"
COOKIE_VALUE = "COOKIEVAL5"


def _site(seen: list[tuple[str, str]]) -> web.Application:
    """Answers every request itself (as a proxy too): a cookie at /setcookie, a 503 the
    first time /flaky is asked for (a retry: a crawler DEBUG line), links at /page."""
    flaky: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.method, request.path))
        if request.path == "/flaky" and not flaky:
            flaky.append("once")
            return web.Response(status=503, text="busy")
        links = "".join(f'<a href="{link}">x</a>' for link in request.query.getall("l", []))
        resp = web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")
        if request.path == "/setcookie":
            resp.set_cookie("sid", COOKIE_VALUE)
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


SECRETS_SPIDER = textwrap.dedent(f"""
    from crawler import Request, Spider

    class Secrets(Spider):
        name = "secrets"

        async def parse(self, response):
            port = response.url.split(":")[2].split("/")[0]
            yield Request(f"http://a.test:{{port}}/login", self.done,
                          data={{"user": "me", "password": "{LOGIN_PASSWORD}"}},
                          headers={{"Authorization": "Bearer {TOKEN}"}},
                          proxy=f"http://user:{PROXY_PASSWORD}@127.0.0.2:{{port}}")
            yield Request(f"http://a.test:{{port}}/flaky", self.done)

        async def done(self, response):
            yield {{"url": response.url}}
""")


def test_debug_logging_shows_no_secret(tmp_path: Path) -> None:
    spider = tmp_path / "secrets.py"
    spider.write_text(SECRETS_SPIDER)
    seen: list[tuple[str, str]] = []
    with serve_in_thread(_site(seen), "127.0.0.2") as base:
        port = URL(base).port
        proc = crawl_ok("run", str(spider), f"http://a.test:{port}/setcookie",
                        "--state", str(tmp_path / "s.db"), "--resolve", "a.test:127.0.0.2",
                        "--delay", "0", "--log-level", "DEBUG")
    assert ("POST", "/login") in seen and ("GET", "/flaky") in seen
    assert " DEBUG crawler: retrying " in proc.stderr, proc.stderr[-3000:]
    for secret in (PROXY_PASSWORD, TOKEN, LOGIN_PASSWORD, COOKIE_VALUE):
        assert secret not in proc.stderr, f"{secret} was logged"


SEEDS_SPIDER = textwrap.dedent("""
    from crawler import Request, Spider

    class Seeds(Spider):
        name = "seeds"
        start_urls = ["http://a.test:PORT/"]

        async def start_requests(self):
            yield Request("http://a.test:PORT/seed-df", self.parse, dont_filter=True)
            yield Request("http://a.test:PORT/seed-df", self.parse, dont_filter=True)
            yield Request("http://a.test:PORT/seed-post", self.parse, method="POST",
                          data={"q": "1"}, dont_filter=True)
            yield Request("http://a.test:PORT/seed-plain", self.parse)
            yield Request("http://a.test:PORT/twice", self.twice)

        async def parse(self, response):
            yield {"url": response.url}

        async def twice(self, response):
            for _ in range(2):
                yield Request("http://a.test:PORT/found-df", self.parse, dont_filter=True)
""")


def test_dont_filter_start_requests_are_sent_once_a_crawl(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    with serve_in_thread(_site(seen), "127.0.0.2") as base:
        port = URL(base).port
        spider = tmp_path / "seeds.py"
        spider.write_text(SEEDS_SPIDER.replace("PORT", str(port)))
        command = ("run", str(spider), "--state", str(tmp_path / "s.db"),
                   "--resolve", "a.test:127.0.0.2", "--delay", "0", "--quiet")
        for limit in ("3", "100", "100"):  # page-limited, then resumed after the end twice
            crawl_ok(*command, "--max-pages", limit)
    sent = Counter(seen)
    assert sent[("GET", "/seed-df")] == 2, sent  # two start requests, each sent once
    assert sent[("POST", "/seed-post")] == 1, sent
    assert sent[("GET", "/seed-plain")] == 1, sent
    assert sent[("GET", "/found-df")] == 2, sent  # found twice on a page: sent twice


def test_a_seed_key_makes_a_fixed_fingerprint_of_its_own() -> None:
    seed = NewRequest("http://h/a", unique="seed 0")
    assert request_fingerprint(seed) == request_fingerprint(seed)
    assert request_fingerprint(seed) != request_fingerprint(seed._replace(unique="seed 1"))
    assert request_fingerprint(seed) != request_fingerprint(NewRequest("http://h/a"))
    assert request_fingerprint(seed) != request_fingerprint(seed._replace(method="POST"))
    found = NewRequest("http://h/a", unique=True)
    assert request_fingerprint(found) != request_fingerprint(found)
