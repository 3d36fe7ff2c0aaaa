"""The built-in site spider: every HTML page on the start URLs' hosts, one item per page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from crawler import Response, Spider


class SiteSpider(Spider):
    """Follows every link within the start URLs' hosts (and their subdomains).

    Item per HTML page: url, status, title (whitespace collapsed; "" if none) and links
    (the number of <a href> elements on the page).
    """

    name = "site"
    html_only = True

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        anchors = response.css("a[href]")
        yield {
            "url": response.url,
            "status": response.status,
            "title": response.title or "",
            "links": len(anchors),
        }
        for request in response.follow_all("a[href]"):
            yield request
