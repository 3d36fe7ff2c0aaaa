"""Item pipelines and item converters, crawling a local product catalogue in-process: what
the pipelines keep is stored, what they drop is counted by reason (in the state file and in
`crawl stats`), and a pipeline or converter that raises fails only its own request."""

from __future__ import annotations

import asyncio
import inspect
import io
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from crawler import (
    CrawlConfig,
    CrawlStatus,
    DropItem,
    Request,
    RequestFailure,
    Response,
    Spider,
    SpiderError,
    StateFileError,
)
from crawler.cli import stats as stats_command
from crawler.engine.crawler import Crawler
from storage.sqlite import SQLiteStore
from tests.crawling import FAST, crawl
from tests.helpers import DONE, FAILED, stats_json
from tests.sites import catalog
from tests.sites.serve import serve

# -- the pipelines of the README's kind ---------------------------------------------------------


class Strip:
    """Sync: a new item, its text stripped."""

    def process(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: v.strip() if isinstance(v, str) else v for k, v in item.items()}


class Validate:
    """Async: drops items without a price, and makes the price a number."""

    async def process(self, item: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        if not item.get("price"):
            raise DropItem("no price")
        return {**item, "price": float(item["price"])}


class DropDuplicates:
    """Keeps the first item of each value of a field; opened and closed once a run."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.seen: set[str] = set()
        self.events: list[str] = []

    def open(self) -> None:
        self.events.append("open")

    async def close(self) -> None:
        self.events.append("close")

    def process(self, item: dict[str, Any]) -> dict[str, Any]:
        if item[self.field] in self.seen:
            raise DropItem(f"duplicate {self.field}")
        self.seen.add(item[self.field])
        return item


class Catalog(Spider):
    name = "catalog"

    def __init__(self, start_urls: list[str], pipelines: list[object]) -> None:
        super().__init__(start_urls)
        self.pipelines = pipelines

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for href in response.links("a[href]"):
            yield response.follow(href, self.parse_product)

    async def parse_product(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": str(response.url), "name": response.css_first("h1").text(),
               "price": response.css_first(".price").text(),
               "sku": response.css_first(".sku").text()}
        for href in response.links("a[href]"):
            yield response.follow(href, self.parse_more)

    async def parse_more(self, response: Response) -> AsyncIterator[Any]:
        return
        yield


def product_url(base: str, n: int) -> str:
    return f"{base}/p/{n}"


async def test_pipelines_strip_validate_and_drop_counted_by_reason(tmp_path: Path) -> None:
    dedup = DropDuplicates("sku")
    async with serve(catalog.make_app()) as base:
        out = await crawl(Catalog([base + "/"], [Strip(), Validate(), dedup]),
                          tmp_path / "c.db")
    dropped = {"no price": len(catalog.NO_PRICE), "duplicate sku": len(catalog.SAME_SKU)}
    kept = catalog.PRODUCTS - sum(dropped.values())
    assert len(out.items) == out.result.counts.items == kept
    for item in out.items:  # stripped by the first, the price made a number by the second
        n = int(item["url"].rsplit("/", 1)[1])
        assert item["name"] == f"Widget {n}" and item["price"] == n + 0.5
    assert len({item["sku"] for item in out.items}) == kept
    assert dedup.events == ["open", "close"]
    # Counted with each request's outcome, in the state file, and shown by `crawl stats`.
    assert {k: v for k, v in out.result.counts.counters.items() if k.startswith("dropped")} \
        == {f"dropped: {reason}": n for reason, n in dropped.items()}
    stats = stats_json(tmp_path / "c.db")
    assert stats["dropped_items"] == dropped
    assert stats["items"] == kept
    assert not any(name.startswith("dropped") for name in stats["counters"])
    # The text, as `crawl stats` prints it (in this process: one subprocess is enough).
    store = await SQLiteStore.open(tmp_path / "c.db", readonly=True)
    try:
        out_text = io.StringIO()
        stats_command.render_text(await stats_command.gather(store), out_text)
    finally:
        await store.close()
    text = out_text.getvalue()
    assert "items dropped by the pipelines, by reason" in text
    assert [line.split() for line in text.splitlines() if "no price" in line] == \
        [["no", "price", str(len(catalog.NO_PRICE))]]
    assert any(line.split() == ["dropped", "items", str(sum(dropped.values()))]
               for line in text.splitlines())


class Explodes:
    """Raises on one product, forgets to return the item on another."""

    def process(self, item: dict[str, Any]) -> dict[str, Any] | None:
        if item["url"].endswith("/p/5"):
            raise ValueError("cannot price widget 5")  # line named in the failure
        if item["url"].endswith("/p/6"):
            return None
        return item


RAISING_LINE = inspect.getsourcelines(Explodes.process)[1] + 2


async def test_a_raising_pipeline_fails_only_its_request(tmp_path: Path) -> None:
    async with serve(catalog.make_app()) as base:
        out = await crawl(Catalog([base + "/"], [Strip(), Explodes()]), tmp_path / "r.db")
    five, six = product_url(base, 5), product_url(base, 6)
    state, _, error, _ = out.rows[five]
    assert state == FAILED
    assert error == (f"pipeline: Explodes: ValueError: cannot price widget 5 (at {__file__}:"
                     f"{RAISING_LINE} in process)")
    state, _, error, _ = out.rows[six]
    assert state == FAILED and error is not None
    assert error.startswith("pipeline: Explodes: SpiderError: Explodes.process() returned None")
    # Neither request's items nor its new requests were stored; every other page's were.
    urls = {item["url"] for item in out.items}
    assert urls == {product_url(base, n) for n in range(1, catalog.PRODUCTS + 1)} - {five, six}
    assert five + "/more" not in out.rows and six + "/more" not in out.rows
    assert out.rows[product_url(base, 7) + "/more"][0] == DONE


class Flattens:
    """Returns what cannot be stored as an item: one product's name, as a str."""

    def process(self, item: dict[str, Any]) -> Any:
        return item["name"] if item["url"].endswith("/p/3") else item


async def test_a_pipeline_returning_what_cannot_be_stored_is_the_pipelines_failure(
        tmp_path: Path) -> None:
    async with serve(catalog.make_app()) as base:
        out = await crawl(Catalog([base + "/"], [Flattens()]), tmp_path / "f.db")
    state, _, error, _ = out.rows[product_url(base, 3)]
    assert state == FAILED and error is not None
    assert error.startswith("pipeline: Flattens: SpiderError: "), error
    assert out.rows[product_url(base, 4)][0] == DONE


class Gone(Spider):
    name = "gone"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield Request(response.urljoin("/gone"), self.parse, errback=self.on_error)

    async def on_error(self, failure: RequestFailure) -> AsyncIterator[Any]:
        yield {"url": failure.url, "name": "  gone  ", "price": "1"}
        yield {"url": failure.url, "name": "no price", "price": ""}


async def test_pipelines_take_the_items_of_errbacks(tmp_path: Path) -> None:
    spider = Gone()
    spider.pipelines = [Strip(), Validate()]
    async with serve(catalog.make_app()) as base:
        spider.start_urls = [base + "/"]
        out = await crawl(spider, tmp_path / "e.db", CrawlConfig(delay=0, max_retries=0))
    assert out.rows[base + "/gone"][0] == FAILED
    assert out.items == [{"url": base + "/gone", "name": "gone", "price": 1.0}]
    assert out.result.counts.counters["dropped: no price"] == 1


# -- items of the user's own types: converters -------------------------------------------------


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __str__(self) -> str:
        return f"{self.cents // 100}.{self.cents % 100:02d}"


class Product:
    def __init__(self, url: str, name: str, cents: int) -> None:
        self.url, self.name, self.price = url, name, Money(cents)


def product_as_dict(product: Product) -> dict[str, Any]:
    if product.url.endswith("/p/3"):
        raise LookupError("widget 3 has no catalogue entry")
    return {"url": product.url, "name": product.name, "price": product.price}


class Typed(Spider):
    name = "typed"
    converters: Mapping[type, Callable[[Any], Any]] = {Product: product_as_dict, Money: str}

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for href in response.links("a[href]"):
            yield response.follow(href, self.parse_product)

    async def parse_product(self, response: Response) -> AsyncIterator[Any]:
        n = int(str(response.url).rsplit("/", 1)[1])
        if n == 2:
            yield object()  # no converter for it
        else:
            yield Product(str(response.url), response.css_first("h1").text().strip(), n * 101)


class Rename:
    """A pipeline sees the user's own object, before it is converted."""

    def process(self, item: object) -> object:
        if isinstance(item, Product):
            item.name = item.name.upper()
        return item


@pytest.mark.parametrize("piped", [False, True])
async def test_converters_store_the_users_own_types(tmp_path: Path, piped: bool) -> None:
    spider = Typed()
    if piped:
        spider.pipelines = [Rename()]
    async with serve(catalog.make_app(products=4)) as base:
        spider.start_urls = [base + "/"]
        out = await crawl(spider, tmp_path / "t.db")
    name = "WIDGET 4" if piped else "Widget 4"
    assert {"url": product_url(base, 4), "name": name, "price": "4.04"} in out.items
    assert len(out.items) == 2  # 1 and 4: 2 and 3 failed, each alone
    _, _, error, _ = out.rows[product_url(base, 2)]
    assert error is not None and "converters = {object: ...}" in error
    _, _, error, _ = out.rows[product_url(base, 3)]
    assert error is not None and error.startswith(
        "callback: SpiderError: the converter for Product failed: LookupError: widget 3 "
        "has no catalogue entry")


# -- what the spider's pipelines must be ---------------------------------------------------------


class NoProcess:
    pass


@pytest.mark.parametrize(("pipelines", "says"), [
    ([Strip], "holds the class Strip; give an instance: Strip()"),
    ([NoProcess()], "NoProcess has no process(item) method"),
    (Strip(), "must be a list of pipeline objects"),
])
async def test_pipelines_are_checked_before_the_crawl(tmp_path: Path, pipelines: Any,
                                                      says: str) -> None:
    spider = Catalog(["http://127.0.0.1:1/"], [])
    spider.pipelines = pipelines
    store = await SQLiteStore.open(tmp_path / "p.db")
    try:
        with pytest.raises(SpiderError, match=r"Catalog\.pipelines") as caught:
            Crawler(spider, store, FAST)
    finally:
        await store.close()
    assert says in str(caught.value)


class OpenFails:
    def open(self) -> None:
        raise OSError("no database")

    def process(self, item: Any) -> Any:
        return item


async def test_a_pipeline_that_cannot_open_stops_the_run_and_closes_the_others(
        tmp_path: Path) -> None:
    first = DropDuplicates("sku")
    spider = Catalog(["http://127.0.0.1:1/"], [first, OpenFails()])
    store = await SQLiteStore.open(tmp_path / "o.db")
    try:
        with pytest.raises(SpiderError, match=r"pipeline OpenFails: open\(\) failed: OSError: "
                                              "no database"):
            await Crawler(spider, store, FAST).run()
    finally:
        await store.close()
    assert first.events == ["open", "close"]


class StopsTheRun(DropDuplicates):
    """Stops the crawl at its first item, as Ctrl-C would."""

    crawler: Crawler | None = None

    def process(self, item: dict[str, Any]) -> dict[str, Any]:
        assert self.crawler is not None
        self.crawler.stop()
        return item


async def test_pipelines_are_closed_when_the_run_is_stopped_or_fails(tmp_path: Path) -> None:
    stopping = StopsTheRun("sku")
    async with serve(catalog.make_app()) as base:
        store = await SQLiteStore.open(tmp_path / "s.db")
        try:
            crawler = Crawler(Catalog([base + "/"], [stopping]), store, FAST)
            stopping.crawler = crawler
            result = await crawler.run()
        finally:
            await store.close()
    assert result.status is CrawlStatus.INTERRUPTED
    assert stopping.events == ["open", "close"]
    # A run that fails (here: the state file holds another spider's crawl) closes them too.
    failing = DropDuplicates("sku")
    store = await SQLiteStore.open(tmp_path / "other.db")
    try:
        await store.open_crawl("other", "{}", fresh=False)
        with pytest.raises(StateFileError):
            await Crawler(Catalog(["http://127.0.0.1:9/"], [failing]), store, FAST).run()
    finally:
        await store.close()
    assert failing.events == ["open", "close"]
