"""Unit tests of `crawler.policy.admission`: which found links become requests, and why not."""

from __future__ import annotations

from collections import Counter

import pytest
from yarl import URL

from crawler import CrawlConfig
from crawler.model.request import Request
from crawler.model.response import Response
from crawler.policy import admission as admission_module
from crawler.policy.admission import Admission, RecentKeys, Skip
from crawler.urls.scope import Scope

PAGE = "http://a.test/dir/page.html"


def links(*hrefs: str) -> list[Request]:
    body = "".join(f'<a href="{h}">x</a>' for h in hrefs).encode()
    return Response(URL(PAGE), 200, {"Content-Type": "text/html"}, body).follow_all()


def admission(config: CrawlConfig | None = None, forbidden: tuple[str, ...] = (),
              asked: list[tuple[str, str]] | None = None) -> Admission:
    def robots_forbid(origin: str, key: str) -> bool:
        if asked is not None:
            asked.append((origin, key))
        return any(part in key for part in forbidden)

    return Admission(config or CrawlConfig(), Scope(["a.test"], ports=[8080]), robots_forbid)


def test_each_link_is_admitted_once_or_counted_with_its_reason() -> None:
    gate = admission(CrawlConfig(exclude=(r"/skip",)), forbidden=("/private",))
    skipped: Counter[str] = Counter()
    found = [*links("a.html", "/b", "a.html#top", "mailto:x@a.test", "http://b.test/",
                    "//sub.a.test/c", "/skip/1", "/private/x", "http://[bad"),
             Request("not a url"), Request("HTTP://A.TEST:80/b")]
    admitted = gate.admit(found, 2, 7, skipped)
    assert list(admitted) == ["http://a.test/dir/a.html", "http://a.test/b",
                              "http://sub.a.test/c"]
    assert skipped == {Skip.DUPLICATE: 2, Skip.INVALID_URL: 3, Skip.OFFSITE: 1,
                       Skip.EXCLUDED: 1, Skip.ROBOTS: 1}
    first = admitted["http://a.test/dir/a.html"]
    assert (first.depth, first.parent, first.redirects, first.callback) == (2, 7, 0, None)


def test_links_beyond_max_depth_are_admitted_to_be_parked_without_asking_robots() -> None:
    asked: list[tuple[str, str]] = []
    gate = admission(CrawlConfig(max_depth=1), forbidden=("/",), asked=asked)
    skipped: Counter[str] = Counter()
    assert not gate.too_deep(1) and gate.too_deep(2)
    # Beyond the depth: kept for the store to park (and count), still scoped and deduped.
    parked = gate.admit(links("/x", "/x", "http://b.test/"), 2, 1, skipped)
    assert list(parked) == ["http://a.test/x"] and parked["http://a.test/x"].depth == 2
    assert skipped == {Skip.DUPLICATE: 1, Skip.OFFSITE: 1}
    assert not asked  # robots.txt is asked when they are queued, not now
    skipped.clear()
    assert gate.admit(links("/x"), 1, 1, skipped) == {}
    assert skipped == {Skip.ROBOTS: 1}
    assert not admission().too_deep(10**6)


def test_robots_is_asked_with_the_origin_it_keys_policies_by() -> None:
    asked: list[tuple[str, str]] = []
    gate = admission(asked=asked)
    gate.admit(links("/x", "https://a.test/y", "http://a.test:8080/z"), 1, 1, Counter())
    # One spelling of an origin: the canonical URL's own start, with no default port.
    assert asked == [("http://a.test", "http://a.test/x"),
                     ("https://a.test", "https://a.test/y"),
                     ("http://a.test:8080", "http://a.test:8080/z")]


def test_remembered_keys_are_duplicates_until_they_age_out() -> None:
    gate = admission()
    skipped: Counter[str] = Counter()
    admitted = gate.admit(links("/x", "/y"), 1, 1, skipped)
    assert len(admitted) == 2
    # Not remembered (the callback could still fail): found again, admitted again.
    assert len(gate.admit(links("/x"), 1, 1, skipped)) == 1
    gate.remember(admitted)
    assert gate.admit(links("/x", "/y", "/z"), 1, 1, skipped).keys() == {"http://a.test/z"}
    assert skipped[Skip.DUPLICATE] == 2


def test_recent_keys_keep_two_generations() -> None:
    recent = RecentKeys(3)
    recent.update(["a", "b"])
    recent.update(["c"])  # the first generation is full
    recent.update(["d", "e", "f"])  # so is the second: "a".."c" are forgotten
    assert "a" not in recent and "c" not in recent and "d" in recent and "f" in recent
    recent.update(["g"])
    assert "d" in recent and "g" in recent


def test_tracking_parameters_are_stripped_before_dedup() -> None:
    gate = admission(CrawlConfig(strip_tracking=True, sort_query=True))
    skipped: Counter[str] = Counter()
    admitted = gate.admit(links("/p?b=2&a=1&utm_source=x", "/p?a=1&b=2"), 1, 1, skipped)
    assert list(admitted) == ["http://a.test/p?a=1&b=2"]
    assert skipped == {Skip.DUPLICATE: 1}


def test_the_origin_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission_module, "ORIGINS", 10)
    gate = admission()
    skipped: Counter[str] = Counter()
    for n in range(25):
        gate.admit([Request(f"http://h{n}.a.test/"), Request(f"http://o{n}.test/")], 1, 1,
                   skipped)
        assert len(gate._origins) <= 10
    assert skipped == {Skip.OFFSITE: 25}


def test_text_that_is_not_canonical_is_an_invalid_url_not_a_crash() -> None:
    # Request.prepared trusts its caller; a wrong key costs one link, not the page.
    skipped: Counter[str] = Counter()
    bad = Request.prepared("http://a.test", None, None, 0, key="http://a.test")
    assert admission().admit([bad, *links("/ok")], 1, 1, skipped).keys() == {"http://a.test/ok"}
    assert skipped == {Skip.INVALID_URL: 1}
