"""Settings that go with every request of a crawl: default headers (`headers`, `--header`),
per-host basic auth, and a proxy (`proxy`, `--proxy`). Real servers on 127.0.0.x; the proxy
is a small forwarding proxy the test starts, which logs what it forwards."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from crawler import CrawlConfig
from crawler.errors import PrivateAddress
from crawler.http.fetcher import Fetcher
from spiders.site import SiteSpider
from storage import RunRecord
from storage.sqlite import SQLiteStore
from tests.crawling import crawl as crawl_in_process
from tests.helpers import crawl, crawl_ok, stats_json
from tests.sites.serve import serve, serve_in_thread, serve_many

PAGES = 6
SECRET = "s3cret-pw"
AUTHORIZED = aiohttp.encode_basic_auth("user", SECRET)


@dataclass
class Seen:
    """What one test server was asked: (host, path, headers) in order, with arrival times."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            host = request.host.split(":")[0]
            self.requests.append((host, request.path, dict(request.headers)))
            self.arrivals[request.host].append(time.monotonic())
            if request.path == "/away":  # to the other host, same port
                raise web.HTTPFound(f"http://b.test:{request.url.port}/landing")
            links = "".join(f'<a href="/p/{n}">{n}</a>' for n in range(PAGES))
            return web.Response(content_type="text/html",
                                text=f'<title>{request.path}</title>{links}<a href="/away">x</a>')

        app = web.Application()
        app.router.add_get("/{tail:.*}", page)
        return app


class TwoHosts(SiteSpider):
    allowed_hosts = ("a.test", "b.test")  # and their subdomains


async def test_basic_auth_goes_to_its_host_only_never_after_a_redirect(tmp_path: Path) -> None:
    seen = Seen()
    async with serve_many(seen.app(), ["127.0.0.2", "127.0.0.3"]) as (base, _):
        port = URL(base).port
        config = CrawlConfig(delay=0, per_host=4, auth={"a.test": ("user", SECRET)},
                             headers={"Accept-Language": "en", "Authorization-Hint": "none"},
                             resolve={"a.test": "127.0.0.2", "b.test": "127.0.0.3",
                                      "sub.a.test": "127.0.0.3"})
        spider = TwoHosts([f"http://a.test:{port}/", f"http://sub.a.test:{port}/"])
        out = await crawl_in_process(spider, tmp_path / "auth.db", config)
    hosts = {host for host, _, _ in seen.requests}
    assert hosts == {"a.test", "b.test", "sub.a.test"}
    assert any(h == "b.test" and p == "/landing" for h, p, _ in seen.requests)
    for host, path, headers in seen.requests:
        assert headers.get("Accept-Language") == "en", (host, path)
        # The exact host only: not its subdomain, not the host a redirect led to.
        wanted = AUTHORIZED if host == "a.test" else None
        assert headers.get("Authorization") == wanted, (host, path)
    assert out.result.counts.done == sum(p != "/robots.txt" for _, p, _ in seen.requests)
    # Never stored: not in the run's settings, not anywhere in the file.
    assert SECRET not in "".join(r.config for r in await _runs(tmp_path / "auth.db"))
    assert not await asyncio.to_thread(_holds, tmp_path, "auth.db*", SECRET)


def _holds(folder: Path, pattern: str, secret: str) -> list[Path]:
    """The files (a state file, its journal) that hold `secret` anywhere in their bytes."""
    return [p for p in folder.glob(pattern) if secret.encode() in p.read_bytes()]


async def _runs(path: Path) -> list[RunRecord]:
    store = await SQLiteStore.open(path, readonly=True)
    try:
        return await store.runs()
    finally:
        await store.close()


def test_header_option_reaches_the_server(tmp_path: Path) -> None:
    seen = Seen()
    with serve_in_thread(seen.app(), "127.0.0.2") as base:
        crawl_ok("site", f"{base}/p/0", "--state", str(tmp_path / "h.db"), "--delay", "0",
                 "--max-pages", "3", "--header", "X-Crawl-Test: yes",
                 "--header", "Accept-Language: fr", "--quiet")
    assert len(seen.requests) >= 3
    for _, path, headers in seen.requests:
        assert headers.get("X-Crawl-Test") == "yes", path
        assert headers.get("Accept-Language") == "fr", path


# -- a proxy ------------------------------------------------------------------------------


@dataclass
class Proxy:
    """Forwards absolute-URI requests (`GET http://host/path`) to their target, and logs
    each: the request line's target and the Proxy-Authorization it carried. A target whose
    host is `public.example` is answered by the proxy itself (nothing leaves loopback)."""

    forwarded: list[tuple[str, str | None]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def forward(request: web.Request) -> web.Response:
            target = request.raw_path  # absolute-form: the whole URL
            self.forwarded.append((target, request.headers.get("Proxy-Authorization")))
            if URL(target).host == "public.example":
                return web.Response(text="from the proxy")
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() not in ("proxy-authorization", "connection", "host")}
            async with aiohttp.ClientSession(auto_decompress=True) as session, \
                    session.get(target, headers=headers, allow_redirects=False) as resp:
                body = await resp.read()
                kept = {k: v for k, v in resp.headers.items() if k.lower() not in (
                    "content-length", "content-encoding", "transfer-encoding", "connection")}
                return web.Response(status=resp.status, body=body, headers=kept)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        return app


async def test_every_request_goes_through_the_proxy_and_politeness_stays_per_host(
        tmp_path: Path) -> None:
    seen, proxy, delay = Seen(), Proxy(), 0.25
    async with serve_many(seen.app(), ["127.0.0.2", "127.0.0.3"]) as (a, b), \
            serve(proxy.app(), "127.0.0.4") as proxy_base:
        proxy_url = str(URL(proxy_base).with_user("puser").with_password(SECRET))
        config = CrawlConfig(delay=delay, per_host=1, proxy=proxy_url, max_pages=12)
        out = await crawl_in_process(SiteSpider([f"{a}/", f"{b}/"]), tmp_path / "proxy.db", config)
    assert out.result.counts.done == 12
    asked = [path for _, path, _ in seen.requests]
    assert len(proxy.forwarded) == len(asked) == 12 + 2  # the pages and two robots.txt
    assert all(target.startswith("http://127.0.0.") for target, _ in proxy.forwarded)
    assert {auth for _, auth in proxy.forwarded} == {
        aiohttp.encode_basic_auth("puser", SECRET)}
    # Per target host: never two request starts closer than the delay at either target...
    for host, times in seen.arrivals.items():
        gaps = [t2 - t1 for t1, t2 in itertools.pairwise(times)]
        assert min(gaps) >= delay * 0.8, (host, gaps)
    # ...while the two hosts were crawled side by side, not one delay per proxy.
    merged = sorted(t for times in seen.arrivals.values() for t in times)
    assert min(t2 - t1 for t1, t2 in itertools.pairwise(merged)) < delay / 2
    stored = "".join(r.config for r in await _runs(tmp_path / "proxy.db"))
    assert SECRET not in stored and "127.0.0.4" in stored
    assert not await asyncio.to_thread(_holds, tmp_path, "proxy.db*", SECRET)


def test_proxy_credentials_stay_out_of_stats_and_logs(tmp_path: Path) -> None:
    proxy, seen = Proxy(), Seen()
    with serve_in_thread(seen.app(), "127.0.0.2") as base, \
            serve_in_thread(proxy.app(), "127.0.0.4") as proxy_base:
        proxy_url = str(URL(proxy_base).with_user("puser").with_password(SECRET))
        proc = crawl_ok("site", f"{base}/", "--state", str(tmp_path / "p.db"), "--delay", "0",
                        "--max-pages", "3", "--proxy", proxy_url, "--log-level", "DEBUG")
        # A proxy that is not there: the error names the proxy, not its password.
        dead = crawl("site", f"{base}/", "--state", str(tmp_path / "d.db"),
                        "--max-retries", "0", "--proxy", f"http://u:{SECRET}@127.0.0.5:9",
                        "--log-level", "DEBUG")
    assert len(proxy.forwarded) >= 3
    assert SECRET not in proc.stderr + proc.stdout
    assert SECRET not in str(stats_json(tmp_path / "p.db"))
    assert dead.returncode == 3, dead.stderr  # nothing was fetched
    assert SECRET not in dead.stderr + dead.stdout
    assert "proxy" in dead.stderr


async def test_the_private_address_guard_spares_the_users_proxy_not_private_targets() -> None:
    proxy = Proxy()
    async with serve(proxy.app(), "127.0.0.4") as proxy_base:
        config = CrawlConfig(proxy=proxy_base, allow_private=False, max_retries=0)
        async with Fetcher(config) as fetcher:
            # A public crawl may use a proxy on loopback: the user chose it.
            result = await fetcher.fetch(URL("http://public.example/"))
            assert (result.status, result.body) == (200, b"from the proxy")
            # ...but the proxy is not a way into private networks.
            with pytest.raises(PrivateAddress):
                await fetcher.fetch(URL("http://127.0.0.9/"))
    assert [target for target, _ in proxy.forwarded] == ["http://public.example/"]

