"""A resumable, polite asyncio web crawler whose whole state is one SQLite file.

    from crawler import Spider

    class Books(Spider):
        name = "books"
        start_urls = ["https://books.toscrape.com/"]

        async def parse(self, response):
            for href in response.links():
                yield response.follow(href, self.parse_book)

        async def parse_book(self, response):
            yield {"title": response.css_first("h1").text()}

    result = crawl(Books, state="books.db", max_pages=100)   # or: await crawl_async(...)

The public API is `__all__` below: what a spider or a script running crawls needs.
Everything else, in this package's modules (`crawler.engine`, `crawler.observe`, ...), is
internal: it may change or move without notice.
"""

from crawler.api import crawl, crawl_async, iter_items
from crawler.config import CrawlConfig, HostPolicy
from crawler.engine.crawler import Crawler, CrawlResult, CrawlStatus
from crawler.errors import (
    ConfigError,
    CrawlError,
    DropItem,
    FetchError,
    SpiderError,
    StateFileError,
    StateWriteError,
)
from crawler.model.request import Request
from crawler.model.response import Response
from crawler.model.specs import RequestFailure
from crawler.model.spider import Spider

__all__ = [
    "ConfigError",
    "CrawlConfig",
    "CrawlError",
    "CrawlResult",
    "CrawlStatus",
    "Crawler",
    "DropItem",
    "FetchError",
    "HostPolicy",
    "Request",
    "RequestFailure",
    "Response",
    "Spider",
    "SpiderError",
    "StateFileError",
    "StateWriteError",
    "crawl",
    "crawl_async",
    "iter_items",
]
