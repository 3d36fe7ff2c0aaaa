"""The built-in site spider: every HTML page on the start URLs' hosts, one item per page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from crawler import Request, Response, Spider


class SiteSpider(Spider):
    """Follows every link within the start URLs' hosts (and their subdomains).

    Item per HTML page: url, status, title (whitespace collapsed; "" if none) and links
    (the number of <a href> elements on the page). With `sitemaps=True` it also reads the
    sitemaps that robots.txt lists (or /sitemap.xml), so pages no link reaches are found.
    """

    name = "site"
    html_only = True
    max_sitemap_depth = 3  # sitemap index -> index -> ... -> urlset

    def __init__(self, start_urls: Sequence[str] | None = None, *,
                 sitemaps: bool = False) -> None:
        super().__init__(start_urls)
        self.use_sitemaps = sitemaps

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        requests = response.follow_all("a[href]")  # one for each <a href>, repeats included
        yield {
            "url": response.url,
            "status": response.status,
            "title": response.title or "",
            "links": len(requests) + response.links_over,  # those over max_links too
        }
        for request in requests:
            yield request
        if self.use_sitemaps and response.depth == 0:
            for url in response.robots_sitemaps or [response.urljoin("/sitemap.xml") or ""]:
                yield Request(url, self.parse_sitemap, cb_kwargs={"level": 0})

    async def parse_sitemap(self, response: Response, level: int) -> AsyncIterator[Any]:
        sitemap = response.sitemap()
        for url in sitemap.pages:
            yield response.follow(url)
        if level < self.max_sitemap_depth:
            for url in sitemap.sitemaps:
                yield response.follow(url, self.parse_sitemap, cb_kwargs={"level": level + 1})
