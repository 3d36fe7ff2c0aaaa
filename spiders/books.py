"""An example spider to copy: list pages -> detail pages -> structured items, with pagination.

    crawl run spiders/books.py --state books.db
    crawl export books.db --format csv -o books.csv

It scrapes a shop laid out like books.toscrape.com: catalogue pages of book tiles with a "next"
link, and a detail page per book with its price, stock and UPC.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from crawler import Response, Spider

_STOCK = re.compile(r"\((\d+) available\)")


@dataclass(frozen=True, slots=True)
class Book:
    title: str
    price: float
    stock: int
    upc: str
    url: str
    list_page: int


class BooksSpider(Spider):
    name = "books"
    start_urls = ("http://127.0.0.1:8000/",)  # or: crawl run spiders/books.py URL
    # Per-spider settings; the command line (--delay, --per-host, ...) still wins.
    delay = 0.25
    per_host = 4

    async def parse(self, response: Response, page: int = 1) -> AsyncIterator[Any]:
        """A catalogue page: every book's detail page, then the next catalogue page."""
        for link in response.css("article.product_pod h3 a"):
            href = link.attributes.get("href")
            if href:
                yield response.follow(href, self.parse_book, cb_kwargs={"list_page": page})
        next_link = response.css_first("li.next a")
        if next_link is not None and next_link.attributes.get("href"):
            # Catalogue pages first: they lead to everything else.
            yield response.follow(str(next_link.attributes["href"]), self.parse,
                                  cb_kwargs={"page": page + 1}, priority=1)

    async def parse_book(self, response: Response, list_page: int) -> AsyncIterator[Any]:
        """A detail page: one Book item."""
        title = response.css_first("div.product_main h1")
        price = response.css_first("div.product_main p.price_color")
        stock = response.css_first("div.product_main p.availability")
        if title is None or price is None:
            raise ValueError("not a book page: no title or price")
        rows = {th.text(strip=True): td.text(strip=True)
                for th, td in ((r.css_first("th"), r.css_first("td"))
                               for r in response.css("table.table-striped tr"))
                if th is not None and td is not None}
        match = _STOCK.search(stock.text() if stock is not None else "")
        yield Book(
            title=title.text(strip=True),
            price=float(price.text(strip=True).lstrip("£$€")),
            stock=int(match.group(1)) if match else 0,
            upc=rows.get("UPC", ""),
            url=response.url,
            list_page=list_page,
        )
