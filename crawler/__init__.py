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

from crawler.admission import Skip
from crawler.config import CrawlConfig, HostPolicy, layered
from crawler.engine import Crawler, CrawlResult, CrawlStatus, Progress, RunState
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
from crawler.loader import load_spider_class
from crawler.request import Request
from crawler.response import Response
from crawler.sitemaps import Sitemap
from crawler.spider import Spider

__all__ = [
    "BadResponse",
    "BodyTooLarge",
    "ConfigError",
    "ConnectError",
    "CrawlConfig",
    "CrawlError",
    "CrawlResult",
    "CrawlStatus",
    "Crawler",
    "FetchError",
    "FetchTimeout",
    "HTTPStatusError",
    "HostPolicy",
    "Progress",
    "ProtocolError",
    "Request",
    "Response",
    "RunState",
    "Sitemap",
    "Skip",
    "Spider",
    "SpiderError",
    "StateFileError",
    "TLSError",
    "TooManyRedirects",
    "layered",
    "load_spider_class",
]
