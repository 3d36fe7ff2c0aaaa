"""The engine's decisions, without sockets: a transport that answers from a dict stands in
for the network (as httpx's MockTransport does), the store is a real SQLite file.

What the network does to a crawl is tested against real servers elsewhere (test_crawl,
test_robots, test_backoff, test_hostile); here it is what the engine decides: retries and
their backoff, a host given up, robots.txt's redirects, the page budget, redirects."""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from crawler import CrawlConfig, Crawler, CrawlResult, CrawlStatus, Request, Response, Spider
from crawler.errors import ConnectError, FetchError
from crawler.http.fetcher import Fetcher
from crawler.http.transport import (
    REDIRECT_STATUSES,
    Cookie,
    FetchResult,
    OnSent,
    Sending,
    Transport,
    WantBody,
)
from crawler.observe.metrics import PoolStats
from crawler.policy import frontier
from storage.sqlite import SQLiteStore

BASE = "http://a.test"
Answer = tuple[int, Mapping[str, str], bytes]


def page(*links: str) -> Answer:
    body = "".join(f'<a href="{link}">x</a>' for link in links)
    return 200, {"Content-Type": "text/html"}, f"<title>t</title>{body}".encode()


def redirect(to: str, status: int = 301) -> Answer:
    return status, {"Location": to}, b""


def robots_txt(text: str) -> Answer:
    return 200, {"Content-Type": "text/plain"}, text.encode()


@dataclass
class DictTransport:
    """Answers each URL from `answers` (an answer, a FetchError to raise, or a function of
    how many times the URL was asked before); anything else is a 404."""

    answers: Mapping[str, Answer | FetchError | Callable[[int], Answer | FetchError]]
    fetched: list[str] = field(default_factory=list)
    allow_private: bool = True  # no DNS to ask: the hosts here are names only
    cookie_changes: int = 0  # sets no cookies

    def auth_for(self, starts: Iterable[URL]) -> None:
        return None  # sends no credentials

    def cookies(self) -> tuple[Cookie, ...]:
        return ()

    def load_cookies(self, cookies: Iterable[Cookie]) -> None:
        return None

    def changed_cookies(self) -> tuple[list[Cookie], list[tuple[str, str, str]]]:
        return [], []

    async def fetch(self, url: URL, want_body: WantBody | None = None, *,
                    keep_alive: bool = True, send: Sending | None = None,
                    on_sent: OnSent | None = None) -> FetchResult:
        text = str(url)
        answer = self.answers.get(text, (404, {}, b""))
        if callable(answer):
            answer = answer(self.fetched.count(text))
        self.fetched.append(text)
        if isinstance(answer, FetchError):
            raise type(answer)(str(answer), url=text)
        if on_sent is not None:  # its errors stand for ones before the request went out
            on_sent()
        status, headers, body = answer
        proxy = CIMultiDictProxy(CIMultiDict(headers))
        if status in REDIRECT_STATUSES or (want_body is not None
                                           and not want_body(status, proxy)):
            body = b""  # as the real fetcher: a body not wanted is not read
        return FetchResult(url, status, proxy, body)

    async def private_kind(self, host: str) -> str | None:
        return None

    def pool(self, *, count_process_sockets: bool = True) -> PoolStats:
        return PoolStats(0, 0, 0, 0, 0, 0, 0, 0.0, None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class Pages(Spider):
    name = "pages"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url}
        for href in response.links():
            yield response.follow(href)


def config(**settings: Any) -> CrawlConfig:
    base: dict[str, Any] = {"delay": 0.0, "per_host": 1, "workers": 1, "obey_robots": False,
                            "retry_backoff": 0.01}
    return CrawlConfig(**(base | settings))


async def run(tmp_path: Path, transport: Transport, settings: CrawlConfig,
              starts: Iterable[str] = (f"{BASE}/",), **options: Any) -> CrawlResult:
    store = await SQLiteStore.open(tmp_path / "state.db")
    try:
        return await Crawler(Pages(list(starts)), store, settings, transport=transport,
                             **options).run()
    finally:
        await store.close()


def rows(tmp_path: Path, *columns: str) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "state.db") as conn:
        return {url: tuple(rest) for url, *rest in
                conn.execute(f"SELECT url, {', '.join(columns)} FROM requests")}


def test_the_fetcher_is_a_transport() -> None:
    transport: Transport = Fetcher(CrawlConfig())
    assert transport.allow_private is False


# -- retries ----------------------------------------------------------------------------------


class FrozenWall:
    """A wall clock that stands still: a retry's time is exactly now plus its backoff."""

    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _first_retry(tmp_path: Path, answer: Answer, seed: int) -> tuple[float, str]:
    """Crawl until the first retry is recorded, then stop; the retried row's not_before and
    error."""
    def answer_then_stop(_: int) -> Answer:
        crawler.stop()  # the answer is still processed: its retry is recorded
        return answer

    transport = DictTransport({f"{BASE}/": answer_then_stop})
    store = await SQLiteStore.open(tmp_path / "state.db")
    crawler = Crawler(Pages([f"{BASE}/"]), store, config(retry_backoff=10.0),
                      transport=transport, wall_clock=FrozenWall(), rng=random.Random(seed))
    try:
        result = await crawler.run()
    finally:
        await store.close()
    assert crawler.metrics.retried == 1
    assert result.status is CrawlStatus.INTERRUPTED
    assert transport.fetched == [f"{BASE}/"]
    not_before, error = rows(tmp_path, "not_before", "error")[f"{BASE}/"]
    return not_before, error


async def test_a_retry_waits_its_jittered_backoff_exactly(tmp_path: Path) -> None:
    not_before, error = await _first_retry(tmp_path, (503, {}, b""), seed=7)
    # The first retry waits retry_backoff * 2**0 * uniform(0.5, 1.5), from the seeded source.
    assert not_before == FrozenWall.now + 10.0 * random.Random(7).uniform(0.5, 1.5)
    assert "503" in error


async def test_a_longer_retry_after_wins_over_the_backoff(tmp_path: Path) -> None:
    not_before, _ = await _first_retry(tmp_path, (503, {"Retry-After": "120"}, b""), seed=7)
    assert not_before == FrozenWall.now + 120.0


async def test_a_request_fails_after_its_retries(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Each 500 slows the host down (1 s, then 2 s): not what is checked here.
    monkeypatch.setattr(frontier, "FIRST_PENALTY", 0.05)
    transport = DictTransport({f"{BASE}/": (500, {}, b"")})
    result = await run(tmp_path, transport, config(max_retries=2))
    assert transport.fetched == [f"{BASE}/"] * 3
    assert result.counts.failed == 1
    assert "gave up after 3 attempts" in rows(tmp_path, "error")[f"{BASE}/"][0]


# -- host health ------------------------------------------------------------------------------


async def test_a_host_goes_down_after_dead_after_connect_failures(tmp_path: Path) -> None:
    starts = [f"{BASE}/{n}" for n in range(6)]
    refused = ConnectError("cannot connect to a.test:80: refused")
    transport = DictTransport(dict.fromkeys(starts, refused))
    result = await run(tmp_path, transport, config(dead_after=2, max_retries=5), starts)
    # The first failure is retried; the second takes the host down: it and every queued
    # request fail at once, and the retried one fails when it comes back, unasked.
    assert transport.fetched == starts[:2]
    assert result.counts.failed == 6 and result.counts.done == 0
    errors = [error for (error,) in rows(tmp_path, "error").values()]
    assert all("host down after 2 connection failures in a row" in e for e in errors), errors


async def test_an_answer_restarts_the_count_of_connect_failures(tmp_path: Path) -> None:
    starts = [f"{BASE}/{n}" for n in range(4)]
    refused = ConnectError("refused")
    answers: dict[str, Any] = {starts[0]: refused, starts[1]: page(), starts[2]: refused,
                               starts[3]: page()}
    transport = DictTransport(answers)
    result = await run(tmp_path, transport, config(dead_after=2, max_retries=0), starts)
    assert sorted(transport.fetched) == sorted(starts)
    assert result.counts.failed == 2 and result.counts.done == 2


# -- robots.txt -------------------------------------------------------------------------------


def _chain(hops: int, last: str) -> dict[str, Any]:
    """robots.txt redirected `hops` times, to a file that disallows /private."""
    names = [f"{BASE}/robots.txt", *(f"{BASE}/r{n}" for n in range(1, hops + 1))]
    answers: dict[str, Any] = {a: redirect(b) for a, b in itertools.pairwise(names)}
    answers[names[-1]] = robots_txt(last)
    answers[f"{BASE}/"] = page("/private", "/public")
    return answers


async def test_robots_txt_redirects_are_followed_five_times(tmp_path: Path) -> None:
    transport = DictTransport(_chain(5, "User-agent: *\nDisallow: /private\n"))
    result = await run(tmp_path, transport, config(obey_robots=True))
    assert f"{BASE}/r5" in transport.fetched
    assert f"{BASE}/private" not in transport.fetched and f"{BASE}/public" in transport.fetched
    assert result.counts.counters.get("skipped_robots") == 1
    # Turned away when found, by the policy its origin's robots.txt set: never queued.
    assert f"{BASE}/private" not in rows(tmp_path, "state")


async def test_a_sixth_robots_txt_redirect_makes_the_file_unavailable(tmp_path: Path) -> None:
    transport = DictTransport(_chain(6, "User-agent: *\nDisallow: /private\n"))
    await run(tmp_path, transport, config(obey_robots=True))
    assert f"{BASE}/r6" not in transport.fetched  # not asked: unavailable, all allowed
    assert f"{BASE}/private" in transport.fetched


async def test_a_robots_txt_redirect_out_of_scope_is_not_followed(tmp_path: Path) -> None:
    answers: dict[str, Any] = {
        f"{BASE}/robots.txt": redirect("http://elsewhere.test/robots.txt"),
        "http://elsewhere.test/robots.txt": robots_txt("User-agent: *\nDisallow: /\n"),
        f"{BASE}/": page("/private"),
    }
    transport = DictTransport(answers)
    await run(tmp_path, transport, config(obey_robots=True))
    assert "http://elsewhere.test/robots.txt" not in transport.fetched
    assert f"{BASE}/private" in transport.fetched


async def test_a_robots_txt_redirect_to_a_subdomain_in_scope_is_followed(
        tmp_path: Path) -> None:
    answers: dict[str, Any] = {
        f"{BASE}/robots.txt": redirect("http://www.a.test/robots.txt"),
        "http://www.a.test/robots.txt": robots_txt("User-agent: *\nDisallow: /private\n"),
        f"{BASE}/": page("/private"),
    }
    transport = DictTransport(answers)
    await run(tmp_path, transport, config(obey_robots=True))
    assert "http://www.a.test/robots.txt" in transport.fetched
    assert f"{BASE}/private" not in transport.fetched


async def test_an_unreachable_robots_txt_defers_then_fails_its_requests(tmp_path: Path) -> None:
    answers: dict[str, Any] = {f"{BASE}/robots.txt": (503, {}, b""), f"{BASE}/": page()}
    transport = DictTransport(answers)
    result = await run(tmp_path, transport, config(obey_robots=True, max_retries=1))
    # Asked max_retries + 1 times; the page waits meanwhile without using its attempts.
    assert transport.fetched == [f"{BASE}/robots.txt"] * 2
    assert result.counts.failed == 1
    assert "gave up after 2 tries" in rows(tmp_path, "error")[f"{BASE}/"][0]


# -- the page budget, redirects ---------------------------------------------------------------


async def test_max_pages_stops_claiming(tmp_path: Path) -> None:
    links = [f"/p{n}" for n in range(50)]
    answers: dict[str, Any] = {f"{BASE}/": page(*links)}
    answers |= {f"{BASE}{link}": page() for link in links}
    transport = DictTransport(answers)
    result = await run(tmp_path, transport, config(max_pages=5, workers=4, per_host=4))
    assert len(transport.fetched) == 5
    assert result.status is CrawlStatus.PAGE_LIMIT
    assert result.counts.done == 5 and result.counts.queued == 46


async def test_a_second_run_takes_up_the_budget_where_the_first_left_it(
        tmp_path: Path) -> None:
    links = [f"/p{n}" for n in range(20)]
    answers: dict[str, Any] = {f"{BASE}/": page(*links)}
    answers |= {f"{BASE}{link}": page() for link in links}
    await run(tmp_path, DictTransport(answers), config(max_pages=5))
    second = DictTransport(answers)
    result = await run(tmp_path, second, config(max_pages=8))
    assert len(second.fetched) == 3 and result.counts.done == 8


async def test_a_redirect_is_a_request_at_the_same_depth(tmp_path: Path) -> None:
    answers: dict[str, Any] = {
        f"{BASE}/": page("/a"),
        f"{BASE}/a": redirect("/b"),
        f"{BASE}/b": page(),
    }
    transport = DictTransport(answers)
    result = await run(tmp_path, transport, config())
    assert transport.fetched == [f"{BASE}/", f"{BASE}/a", f"{BASE}/b"]
    assert result.counts.done == 3
    found = rows(tmp_path, "id", "depth", "redirects", "parent", "status")
    a_id = found[f"{BASE}/a"][0]
    assert found[f"{BASE}/a"][1:] == (1, 0, found[f"{BASE}/"][0], 301)
    assert found[f"{BASE}/b"][1:] == (1, 1, a_id, 200)


async def test_a_redirect_chain_too_long_fails(tmp_path: Path) -> None:
    answers: dict[str, Any] = {f"{BASE}/": redirect("/1")}
    answers |= {f"{BASE}/{n}": redirect(f"/{n + 1}") for n in range(1, 10)}
    transport = DictTransport(answers)
    result = await run(tmp_path, transport, config(max_redirects=3))
    assert transport.fetched == [f"{BASE}/", f"{BASE}/1", f"{BASE}/2", f"{BASE}/3"]
    assert result.counts.failed == 1 and result.counts.done == 3
    assert "more than 3 redirects" in rows(tmp_path, "error")[f"{BASE}/3"][0]


async def test_a_callback_error_fails_only_its_request(tmp_path: Path) -> None:
    class Broken(Pages):
        async def parse(self, response: Response) -> AsyncIterator[Any]:
            if response.url.endswith("/bad"):
                raise ValueError("no")
            yield Request(f"{BASE}/bad")
            yield Request(f"{BASE}/good")

    answers: dict[str, Any] = {f"{BASE}/": page(), f"{BASE}/bad": page(),
                               f"{BASE}/good": page()}
    store = await SQLiteStore.open(tmp_path / "state.db")
    try:
        result = await Crawler(Broken([f"{BASE}/"]), store, config(),
                               transport=DictTransport(answers)).run()
    finally:
        await store.close()
    assert result.counts.done == 2 and result.counts.failed == 1
    assert "ValueError: no" in rows(tmp_path, "error")[f"{BASE}/bad"][0]
