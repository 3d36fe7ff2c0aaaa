"""Unit tests of `crawler.policy.identity`: what a crawl is, what differs, what widens. No I/O."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crawler import CrawlConfig, Spider
from crawler.model.loader import class_path, load_spider_class
from crawler.policy import identity as ident
from spiders.site import SiteSpider


class Other(Spider):
    name = "site"


def of(spider: Spider | None = None, config: CrawlConfig | None = None,
       urls: tuple[str, ...] = ("http://a.test/",)) -> dict[str, object]:
    return ident.of(spider or SiteSpider(list(urls)), config or CrawlConfig(), urls)


def test_identity_round_trips_as_text_and_ignores_order() -> None:
    one = of(urls=("http://a.test/", "http://b.test/"))
    two = of(urls=("http://b.test/", "http://a.test/", "http://a.test/"))
    assert ident.to_text(one) == ident.to_text(two)
    assert ident.from_text(ident.to_text(one)) == one
    assert ident.from_text("not json") == {} and ident.from_text("[1]") == {}
    assert one["spider"] == "site" and one["spider_class"] == "site.SiteSpider"
    assert one["html_only"] is True and one["allowed_hosts"] is None


def test_what_differs_is_named_and_refused() -> None:
    base = of()
    cases = {
        "start URLs: http://a.test/ in the file; http://b.test/ now": of(
            urls=("http://b.test/",)),
        "spider_class": of(Other(["http://a.test/"])),
        "exclude": of(config=CrawlConfig(exclude=("/x",))),
        "obey_robots": of(config=CrawlConfig(obey_robots=False)),
        "strip_tracking": of(config=CrawlConfig(strip_tracking=True)),
        "max_depth: none in the file, 2 now": of(config=CrawlConfig(max_depth=2)),
    }
    for words, current in cases.items():
        comparison = ident.compare(base, current)
        assert comparison.refused and not comparison.widenings, words
        assert any(words in d for d in comparison.differences), comparison
        assert len(comparison.differences) == 1 or words == "spider_class", comparison
    message = ident.refusal("'x.db'", ident.compare(base, cases["exclude"]))
    assert "'x.db'" in message and "--fresh" in message and "exclude" in message


def test_settings_that_do_not_change_the_crawl_are_not_compared() -> None:
    fast = CrawlConfig(workers=64, delay=0, max_pages=10, timeout=5, user_agent="x/1")
    assert ident.compare(of(), of(config=fast)) == ident.Comparison((), ())


def test_a_deeper_or_no_depth_limit_widens_a_shallower_one_narrows() -> None:
    d2, d3 = of(config=CrawlConfig(max_depth=2)), of(config=CrawlConfig(max_depth=3))
    assert ident.compare(d2, d3).widenings == ("max_depth 2 -> 3",)
    assert ident.compare(d2, of()).widenings == ("max_depth 2 -> none",)
    assert not ident.compare(d2, d3).refused
    assert ident.compare(d3, d2).refused and ident.compare(of(), d2).refused


def test_keys_only_one_side_knows_are_adopted() -> None:
    """A setting added later (e.g. `allow_private`) does not refuse files made before it."""
    stored = {k: v for k, v in of().items() if k != "html_only"}
    assert ident.compare(stored, of()) == ident.Comparison((), ())
    assert ident.compare(of(), stored) == ident.Comparison((), ())


def test_the_settings_list_follows_the_config_fields() -> None:
    fields = {f.name for f in dataclasses.fields(CrawlConfig)}
    identity = of()
    assert {k for k in ident.CRAWL_SETTINGS if k in fields} <= set(identity)
    assert not {k for k in ident.CRAWL_SETTINGS if k not in fields} & set(identity)


def test_many_start_urls_are_kept_as_a_count_and_a_digest() -> None:
    urls = tuple(f"http://a.test/{i}" for i in range(ident.LISTED_URLS + 1))
    big = of(urls=urls)
    assert isinstance(big["start_urls"], str) and "101 URLs" in big["start_urls"]
    assert ident.compare(big, of(urls=(*urls[:-1], "http://a.test/x"))).refused


def test_a_spider_class_is_named_the_same_from_a_file_or_a_module(tmp_path: Path) -> None:
    spider = tmp_path / "quotes.py"
    spider.write_text("from crawler import Spider\n\nclass Quotes(Spider):\n    name = 'q'\n")
    assert class_path(load_spider_class(str(spider))) == "quotes.Quotes"
    assert class_path(load_spider_class("spiders.site:SiteSpider")) == "site.SiteSpider"



def test_allow_private_may_change_on_resume() -> None:
    spider = SiteSpider(["http://a.test/"])
    before = ident.of(spider, CrawlConfig(), ["http://a.test/"])
    after = ident.of(spider, CrawlConfig(allow_private=True), ["http://a.test/"])
    assert ident.compare(before, after) == ident.Comparison((), ("allow_private False -> True",))
    assert ident.compare(after, before) == ident.Comparison((), ("allow_private True -> False",))
