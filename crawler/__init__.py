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
"""

from crawler.config import CrawlConfig, HostPolicy, layered
from crawler.engine.crawler import Crawler, CrawlResult, CrawlStatus, RunState
from crawler.errors import (
    BadResponse,
    BodyTooLarge,
    ConfigError,
    ConnectError,
    CrawlError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    ProtocolError,
    SpiderError,
    StateFileError,
    TLSError,
    TooManyRedirects,
)
from crawler.model.loader import load_spider_class
from crawler.model.request import Request
from crawler.model.response import Response
from crawler.model.sitemaps import Sitemap
from crawler.model.spider import Spider
from crawler.observe.metrics import CrawlTotals, HostRow, Metrics, PoolStats, Snapshot, Timings
from crawler.policy.admission import Skip

__all__ = [
    "BadResponse",
    "BodyTooLarge",
    "ConfigError",
    "ConnectError",
    "CrawlConfig",
    "CrawlError",
    "CrawlResult",
    "CrawlStatus",
    "CrawlTotals",
    "Crawler",
    "FetchError",
    "FetchTimeout",
    "HTTPStatusError",
    "HostPolicy",
    "HostRow",
    "Metrics",
    "PoolStats",
    "ProtocolError",
    "Request",
    "Response",
    "RunState",
    "Sitemap",
    "Skip",
    "Snapshot",
    "Spider",
    "SpiderError",
    "StateFileError",
    "TLSError",
    "Timings",
    "TooManyRedirects",
    "layered",
    "load_spider_class",
]
