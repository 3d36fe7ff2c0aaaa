"""The same crawl for Scrapy: every page's title as an item, every on-site link followed.

Run by bench/compare.py with Scrapy's own Python: `scrapy runspider bench/scrapy_spider.py
-a start=URL -s ...`. Scrapy's dedup filter and scheduler queues live in memory.
"""

from urllib.parse import urlparse

import scrapy


class Bench(scrapy.Spider):
    name = "bench"

    def __init__(self, start: str, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start]
        self.allowed_domains = [urlparse(start).hostname]

    def parse(self, response):
        if not isinstance(response, scrapy.http.HtmlResponse):
            return
        yield {"url": response.url, "title": response.css("title::text").get("")}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, self.parse)
