"""robots.txt (RFC 9309) against servers that answer it every way a real site does."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from protego import Protego

from crawler import CrawlConfig, CrawlStatus
from crawler.errors import FailureKind, FetchTimeout, TLSError
from crawler.policy import robots
from crawler.policy.robots import Robots as Policy
from crawler.policy.robots import RobotsGate, RobotsState, Verdict, from_response
from crawler.urls.canon import parse_absolute, parsed
from spiders.site import SiteSpider
from storage import RequestState
from tests.crawling import crawl
from tests.sites import multihost
from tests.sites.serve import serve

DONE, FAILED = RequestState.DONE, RequestState.FAILED
UA = "crawler/0.1 (polite asyncio web crawler)"
Robots = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


def _site(robots: Robots, redirects: dict[str, str] | None = None
          ) -> tuple[web.Application, Counter[str]]:
    """Pages /, /a, /private/x, /b linking to each other; robots.txt answered by `robots`;
    `redirects` maps paths to where they redirect."""
    hits: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.StreamResponse:
        hits[request.path] += 1
        if redirects and request.path in redirects:
            raise web.HTTPFound(redirects[request.path])
        if request.path == "/robots.txt":
            return await robots(request, hits[request.path])
        if request.path == "/moved/robots.txt":
            return web.Response(text="User-agent: *\nDisallow: /private\n")
        links = "".join(f'<a href="{p}">x</a>' for p in ("/a", "/private/x", "/b"))
        return web.Response(text=f"<title>{request.path}</title>{links}",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app, hits


async def _crawl(tmp_path: Path, robots: Robots, **settings: object
                 ) -> tuple[Counter[str], dict[str, tuple[int, int | None, str | None, int]],
                            CrawlStatus, dict[str, int]]:
    app, hits = _site(robots)
    config = CrawlConfig(delay=0, retry_backoff=0.05, **settings)  # type: ignore[arg-type]
    async with serve(app) as base:
        out = await crawl(SiteSpider([base + "/"]), tmp_path / "r.db", config)
    rows = {url.removeprefix(base): row for url, row in out.rows.items()}
    return hits, rows, out.result.status, dict(out.result.counts.counters)


def _text(body: str) -> Robots:
    async def answer(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(text=body)
    return answer


async def test_disallowed_pages_are_never_fetched_and_are_counted(tmp_path: Path) -> None:
    hits, rows, status, counters = await _crawl(
        tmp_path, _text("User-agent: *\nDisallow: /private\n"))
    assert status is CrawlStatus.FINISHED
    assert hits["/private/x"] == 0
    assert hits["/robots.txt"] == 1
    assert {"/", "/a", "/b"} <= set(rows)
    # Known before the link was found: never even queued.
    assert "/private/x" not in rows
    assert counters["skipped_robots"] >= 1


async def test_the_user_agents_own_group_is_chosen(tmp_path: Path) -> None:
    body = "User-agent: *\nDisallow: /\n\nUser-agent: crawler\nDisallow: /b\n"
    hits, _, _, _ = await _crawl(tmp_path, _text(body))
    assert hits["/a"] == 1 and hits["/private/x"] == 1  # our group allows them
    assert hits["/b"] == 0


async def test_everything_disallowed_fetches_nothing_but_robots(tmp_path: Path) -> None:
    hits, rows, status, counters = await _crawl(tmp_path, _text("User-agent: *\nDisallow: /\n"))
    assert status is CrawlStatus.FINISHED
    assert set(hits) == {"/robots.txt"}
    assert rows["/"][:2] == (DONE, None)
    assert counters["skipped_robots"] == 1


async def test_a_404_robots_allows_everything(tmp_path: Path) -> None:
    async def missing(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=404)
    hits, _, status, _ = await _crawl(tmp_path, missing)
    assert status is CrawlStatus.FINISHED
    assert hits["/private/x"] == 1 and hits["/a"] == 1


async def test_a_5xx_robots_disallows_until_it_recovers(tmp_path: Path) -> None:
    async def flaky(request: web.Request, n: int) -> web.StreamResponse:
        if n <= 2:
            return web.Response(status=503)
        return web.Response(text="User-agent: *\nDisallow: /private\n")
    hits, rows, status, _ = await _crawl(tmp_path, flaky, max_retries=3)
    assert status is CrawlStatus.FINISHED
    assert hits["/robots.txt"] == 3
    # Nothing was fetched while robots.txt failed, and the start page lost no attempt.
    assert rows["/"][0] == DONE and rows["/"][3] == 0
    assert hits["/private/x"] == 0 and hits["/a"] == 1


async def test_a_robots_that_keeps_failing_fails_the_hosts_requests(tmp_path: Path) -> None:
    async def down(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=500)
    hits, rows, status, _ = await _crawl(tmp_path, down, max_retries=2)
    assert status is CrawlStatus.FINISHED
    assert set(hits) == {"/robots.txt"} and hits["/robots.txt"] == 3
    state, _, error, _ = rows["/"]
    assert state == FAILED
    assert error is not None and "robots.txt answered HTTP 500" in error


async def test_a_robots_timeout_counts_as_unreachable(tmp_path: Path) -> None:
    async def hang(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            await asyncio.sleep(3)
        return web.Response(status=404)
    hits, rows, status, _ = await _crawl(tmp_path, hang, timeout=0.5, read_timeout=0.5)
    assert status is CrawlStatus.FINISHED
    assert hits["/robots.txt"] == 2  # timed out once, then "not there": allowed
    assert rows["/"][0] == DONE and hits["/private/x"] == 1


async def test_robots_redirects_are_followed(tmp_path: Path) -> None:
    async def moved(request: web.Request, n: int) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("/moved/robots.txt")
    hits, _, _, _ = await _crawl(tmp_path, moved)
    assert hits["/moved/robots.txt"] == 1
    assert hits["/private/x"] == 0 and hits["/a"] == 1


async def test_ignore_robots_fetches_everything_and_no_robots(tmp_path: Path) -> None:
    hits, _, _, _ = await _crawl(tmp_path, _text("User-agent: *\nDisallow: /\n"),
                                 obey_robots=False)
    assert hits["/robots.txt"] == 0
    assert hits["/private/x"] == 1


async def test_crawl_delay_spaces_requests_to_that_host(tmp_path: Path) -> None:
    app = multihost.make_app(delay_s=0.0, pages_per_host=6,
                             robots_txt="User-agent: *\nCrawl-delay: 0.3\n")
    async with serve(app) as base:
        out = await crawl(SiteSpider([base + "/"]), tmp_path / "c.db",
                          CrawlConfig(delay=0, per_host=4))
    records = app[multihost.RECORDS]
    assert out.result.status is CrawlStatus.FINISHED
    pages = [r for r in records if r.path != "/robots.txt"]
    assert len(pages) == 6
    # per_host=4 and delay=0 would fetch them all at once; Crawl-delay spaces the starts.
    host = records[0].host
    assert multihost.min_start_gap(pages, host) >= 0.3 - 0.015


def test_policy_from_each_kind_of_answer() -> None:
    assert from_response(200, b"User-agent: *\nDisallow: /x\n", 0).state is RobotsState.RULES
    assert from_response(404, b"", 0).allows("http://h/x", UA)
    assert from_response(401, b"", 0).allows("http://h/x", UA)
    unreachable = from_response(503, b"", 0)
    assert unreachable.state is RobotsState.UNREACHABLE
    assert not unreachable.allows("http://h/", UA)
    rules = from_response(200, b"User-agent: *\nDisallow: /x\nSitemap: http://h/s.xml\n", 0)
    assert not rules.allows("http://h/x/1", UA) and rules.allows("http://h/y", UA)
    assert rules.sitemaps == ["http://h/s.xml"]
    assert rules.expired(24 * 3600 + 1) and not rules.expired(3600)


async def test_a_redirect_into_a_disallowed_path_is_not_followed(tmp_path: Path) -> None:
    async def rules(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(text="User-agent: *\nDisallow: /private\n")

    app, hits = _site(rules, redirects={"/jump": "/private/x"})
    async with serve(app) as base:
        spider = SiteSpider([base + "/jump"])
        out = await crawl(spider, tmp_path / "j.db", CrawlConfig(delay=0))
    assert hits["/jump"] == 1 and hits["/private/x"] == 0
    assert out.result.counts.counters["skipped_robots"] == 1


async def test_requests_waiting_for_robots_do_not_use_up_the_page_limit(tmp_path: Path) -> None:
    async def once_down(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=503 if n == 1 else 404)
    hits, rows, status, _ = await _crawl(tmp_path, once_down, max_pages=4)
    # "/" was deferred once while robots.txt was down; that is not a finished page.
    assert status is CrawlStatus.FINISHED
    assert {p for p, r in rows.items() if r[0] == DONE} == {"/", "/a", "/private/x", "/b"}
    assert hits["/robots.txt"] == 2


RULES = ["Disallow: /private/", "Disallow:", "Disallow /x*y", "disallow : /z", "Dissallow: *.pdf",
         "Disallow: /a;b", "Disallow: /a(", "Disallow: /a+b", "Disallow: /@", "Disallow: /a,",
         "DISALLOW: /a%20b # why", "Allow: /private/ok", "Disallow: /*?session=",
         "Disallow: /end$", "Disallow: /~user/", "Disallow: /%7Eother/", "Disalow: /p/1",
         "Disallow: http://h.test/abs", "Disallow: /ä", "Disallow: /A", "Allow: /"]
PATHS = ["/", "/private/", "/private/ok", "/privateer", "/x", "/xay", "/z9", "/doc.pdf",
         "/a b", "/a%20b", "/p?session=1", "/end", "/endless", "/~user/x", "/%7Euser/x",
         "/~other/", "/p/12", "/p/2", "/h.test/abs", "/http://h.test/abs", "/ä", "/a", "/A/b",
         # characters protego's quoting might treat otherwise than yarl's, with no "%"
         "/a;b", "/a:b", "/a+b", "/p?x=a!b", "/a,b", "/a'b", "/a(b)", "/@x", "/a$", "/a*b",
         "/end?", "/z;x", "/x;y", "/private;/x"]


def test_the_quick_disallow_reading_never_allows_what_protego_disallows() -> None:
    # may_disallow() is False only when protego's verdict is surely "allowed"; it may say
    # True for allowed URLs (protego then decides), never False for a disallowed one.
    rng = random.Random(9309)
    for _ in range(300):
        groups = [f"User-agent: {agent}\n" + "\n".join(rng.sample(RULES, rng.randint(0, 5)))
                  for agent in rng.sample(["*", "crawler", "otherbot"], rng.randint(1, 3))]
        policy = from_response(200, "\n\n".join(groups).encode(), 0)
        for path in PATHS:
            key = str(parse_absolute("http://h.test" + path))
            if not policy.may_disallow(key):
                assert policy.allows(key, UA), (groups, key)
                assert policy.allows(key, "otherbot"), (groups, key)


def test_the_quick_disallow_reading_lets_most_links_skip_protego() -> None:
    policy = from_response(200, b"User-agent: *\nDisallow: /private/\nDisallow: /*.pdf$\n", 0)
    assert policy.disallowing == ("/", "/private/")  # "/*" could match any path
    policy = from_response(200, b"User-agent: *\nDisallow: /private/\nDisallow: /tmp\n", 0)
    assert not policy.may_disallow("http://h.test/p/12")
    assert policy.may_disallow("http://h.test/private/x")
    assert policy.may_disallow("http://h.test/p/%41")  # protego's quoting could differ
    assert not from_response(200, b"User-agent: *\nDisallow:\n", 0).may_disallow("http://h/a")


def test_the_gate_forbids_only_what_a_known_live_policy_disallows() -> None:
    now = [0.0]
    gate: RobotsGate[object] = RobotsGate(UA, 3, lambda: now[0])
    origin = "http://h.test:80"
    assert not gate.forbids(origin, "http://h.test/private/x")  # not known yet
    gate.resolve(origin, from_response(200, b"User-agent: *\nDisallow: /private/\n", 0))
    assert gate.forbids(origin, "http://h.test/private/x")
    assert not gate.forbids(origin, "http://h.test/public")
    now[0] = 24 * 3600 + 1  # expired: to be asked again, so not known any more
    assert not gate.forbids(origin, "http://h.test/private/x")
    gate.resolve(origin, from_response(404, b"", now[0]))  # allow all
    assert not gate.forbids(origin, "http://h.test/private/x")
    for _ in range(3):  # unreachable, given up: fails the requests, forbids none at admission
        gate.resolve(origin, from_response(503, b"", now[0]))
    assert gate.check(origin, "http://h.test/x") is Verdict.FAIL
    assert not gate.forbids(origin, "http://h.test/private/x")


def test_a_policy_made_without_the_quick_reading_asks_protego() -> None:
    policy = Policy(RobotsState.RULES, 0, Protego.parse("User-agent: *\nDisallow: /x\n"))
    assert policy.may_disallow("http://h/x")


# -- the fetch of robots.txt as decisions (RFC 9309), without a server -----------------------


def _step(location: str | None, *, hops: int = 0, status: int = 301,
          scope: str = "http://a.test") -> Policy | robots.Follow | robots.Offsite:
    url = parsed(parse_absolute("http://a.test/robots.txt"))
    return robots.after_answer(url, status, location, b"", hops=hops, now=5.0,
                               in_scope=lambda target: str(target).startswith(scope))


def test_robots_txt_redirects_are_followed_up_to_five_hops() -> None:
    assert _step("/moved.txt") == robots.Follow(parsed(parse_absolute("http://a.test/moved.txt")))
    assert isinstance(_step("/moved.txt", hops=robots.MAX_REDIRECTS - 1), robots.Follow)
    last = _step("/moved.txt", hops=robots.MAX_REDIRECTS)
    assert last == Policy(RobotsState.ALLOW_ALL, 5.0)


def test_a_robots_txt_redirect_out_of_scope_or_unusable_allows_all() -> None:
    offsite = _step("http://b.test/robots.txt")
    assert offsite == robots.Offsite(parse_absolute("http://b.test/robots.txt"),
                                     Policy(RobotsState.ALLOW_ALL, 5.0))
    assert _step("mailto:x@y") == Policy(RobotsState.ALLOW_ALL, 5.0)


def test_a_final_robots_txt_answer_is_its_policy() -> None:
    assert _step(None, status=404) == Policy(RobotsState.ALLOW_ALL, 5.0)
    assert _step(None, status=503).state is RobotsState.UNREACHABLE  # type: ignore[union-attr]


def test_a_robots_txt_fetch_failure_disallows_for_now() -> None:
    url = parse_absolute("http://a.test/robots.txt")
    soft = robots.after_failure(FetchTimeout("slow"), url, 1.0)
    assert soft.state is RobotsState.UNREACHABLE and not soft.final
    assert soft.reason == "slow (fetching http://a.test/robots.txt)"
    hard = robots.after_failure(TLSError("bad cert"), url, 1.0)
    assert hard.final and hard.kind is FailureKind.TLS
