"""A small book-shop site, the kind of site an example spider scrapes.

* ``/`` answers ``302 Found`` with ``Location: /catalogue/page-1.html``.
* ``/catalogue/page-<n>.html`` (n = 1..K, K = ceil(books / per_page)): ``per_page`` books as
  ``<article class="product_pod">`` with ``<h3><a href="../books/<slug>/index.html"
  title="Full Title">Short…</a></h3>`` and ``<p class="price_color">£12.34</p>``; a
  ``<li class="next"><a href="page-<n+1>.html">next</a></li>`` on all but the last page
  (and a ``<li class="previous">`` on all but the first); a sidebar of category links.
* ``/books/<slug>/index.html``: ``<h1>`` full title, ``<p class="price_color">£12.34</p>``,
  ``<p class="instock availability">In stock (7 available)</p>``, a
  ``<table class="table table-striped">`` whose ``UPC`` row holds the UPC, and a breadcrumb
  linking back to ``/catalogue/page-1.html`` and to the book's category page.
* ``/catalogue/category/<slug>_<n>/index.html``: every book of one category (links to the
  same detail pages again).

Everything is UTF-8 (``Content-Type: text/html; charset=utf-8``).  Titles contain non-ASCII
characters and some contain ``&`` (written ``&amp;`` in the HTML).  Every request is counted
by ``request.path_qs`` in ``app[REQUESTS]``.
"""

from __future__ import annotations

import functools
import hashlib
import html
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

__all__ = [
    "REQUESTS",
    "book_paths",
    "category_paths",
    "expected_books",
    "list_paths",
    "make_app",
]

#: Counter of ``request.path_qs`` for every request served (any status).
REQUESTS: web.AppKey[Counter[str]] = web.AppKey("books_requests", Counter)
_SHOP: web.AppKey[_Shop] = web.AppKey("books_shop")

_ADJECTIVES = (
    "Crème Brûlée",
    "Salt & Pepper",
    "Naïve",
    "Smörgåsbord",
    "Midnight",
    "Zürich",
    "Quiet",
    "Ænigma",
    "Señor",
    "Glass",
    "Ōsaka",
    "Tom & Jerry's",
)
_NOUNS = (
    "Chronicles",
    "Cookbook",
    "Garden",
    "Mysteries",
    "Letters",
    "Atlas",
    "Poems",
    "Stories",
    "Diaries",
)
_CATEGORIES = ("Travel", "Mystery", "Historical Fiction", "Poetry", "Food & Drink", "Café Culture")
_SHORT_LEN = 24


@dataclass(frozen=True, slots=True)
class _Book:
    index: int
    title: str
    slug: str
    pence: int
    stock: int
    upc: str
    category: int

    @property
    def price_text(self) -> str:
        return f"£{self.pence // 100}.{self.pence % 100:02d}"

    @property
    def short_title(self) -> str:
        if len(self.title) <= _SHORT_LEN:
            return self.title
        return self.title[: _SHORT_LEN - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class _Shop:
    books: tuple[_Book, ...]
    per_page: int
    pages: dict[str, bytes]  # path -> rendered HTML

    @property
    def list_count(self) -> int:
        return max(1, math.ceil(len(self.books) / self.per_page))


def _slugify(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.replace("&", " and "))
    ascii_text = decomposed.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def _category_path(cat: int) -> str:
    return f"/catalogue/category/{_slugify(_CATEGORIES[cat])}_{cat + 2}/index.html"


@functools.lru_cache(maxsize=8)
def _books(count: int) -> tuple[_Book, ...]:
    books = []
    for i in range(count):
        adjective = _ADJECTIVES[i % len(_ADJECTIVES)]
        noun = _NOUNS[(i * 7 + i // len(_ADJECTIVES)) % len(_NOUNS)]
        title = f"{adjective} {noun}, Volume {i + 1}"
        slug = f"{_slugify(title)}_{1000 - i}"
        digest = hashlib.sha256(f"book-{i}".encode()).hexdigest()
        books.append(
            _Book(
                index=i,
                title=title,
                slug=slug,
                pence=1000 + (int(digest[16:24], 16) % 5000),  # £10.00 .. £59.99
                stock=1 + int(digest[24:28], 16) % 22,
                upc=digest[:16],
                category=(i * 5 + i // 3) % len(_CATEGORIES),
            )
        )
    return tuple(books)


_HEAD = (
    '<!DOCTYPE html>\n<html lang="en-us">\n<head>\n<meta charset="utf-8">\n'
    "<title>\n    {title} | Books to Scrape - Sandbox\n</title>\n</head>\n<body>\n"
)
_TAIL = "</body>\n</html>\n"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _sidebar(prefix: str) -> str:
    items = "".join(
        f'<li><a href="{prefix}{_category_path(c)[len("/catalogue/"):]}">{_e(name)}</a></li>\n'
        for c, name in enumerate(_CATEGORIES)
    )
    return f'<div class="side_categories"><ul class="nav nav-list">\n{items}</ul></div>\n'


def _pod(book: _Book, prefix: str) -> str:
    href = f"{prefix}books/{book.slug}/index.html"
    return (
        '<article class="product_pod">\n'
        f'<div class="image_container"><a href="{href}">[cover]</a></div>\n'
        f'<h3><a href="{href}" title="{_e(book.title)}">{_e(book.short_title)}</a></h3>\n'
        '<div class="product_price">\n'
        f'<p class="price_color">{book.price_text}</p>\n'
        '<p class="instock availability">\n    In stock\n</p>\n'
        "</div>\n</article>\n"
    )


def _list_page(shop: _Shop, n: int) -> str:
    first = (n - 1) * shop.per_page
    chunk = shop.books[first : first + shop.per_page]
    pager = ['<ul class="pager">\n']
    if n > 1:
        pager.append(f'<li class="previous"><a href="page-{n - 1}.html">previous</a></li>\n')
    pager.append(f'<li class="current">\n    Page {n} of {shop.list_count}\n</li>\n')
    if n < shop.list_count:
        pager.append(f'<li class="next"><a href="page-{n + 1}.html">next</a></li>\n')
    pager.append("</ul>\n")
    return "".join(
        [
            _HEAD.format(title="All products"),
            '<ul class="breadcrumb"><li><a href="page-1.html">Home</a></li>'
            '<li class="active">All products</li></ul>\n',
            _sidebar(""),
            f"<form><strong>{len(shop.books)}</strong> results - showing "
            f"<strong>{first + 1}</strong> to <strong>{first + len(chunk)}</strong>.</form>\n",
            '<section><ol class="row">\n',
            *(f"<li>{_pod(b, '../')}</li>\n" for b in chunk),
            "</ol>\n",
            *pager,
            "</section>\n",
            _TAIL,
        ]
    )


def _category_page(shop: _Shop, cat: int) -> str:
    chunk = [b for b in shop.books if b.category == cat]
    name = _CATEGORIES[cat]
    return "".join(
        [
            _HEAD.format(title=_e(name)),
            '<ul class="breadcrumb"><li><a href="../../page-1.html">Home</a></li>'
            f'<li class="active">{_e(name)}</li></ul>\n',
            _sidebar("../../"),
            f"<h1>{_e(name)}</h1>\n",
            '<section><ol class="row">\n',
            *(f"<li>{_pod(b, '../../../')}</li>\n" for b in chunk),
            "</ol>\n</section>\n",
            _TAIL,
        ]
    )


def _detail_page(book: _Book) -> str:
    cat_href = "../.." + _category_path(book.category)
    availability = f"In stock ({book.stock} available)"
    rows = (
        ("UPC", book.upc),
        ("Product Type", "Books"),
        ("Price (excl. tax)", book.price_text),
        ("Price (incl. tax)", book.price_text),
        ("Tax", "£0.00"),
        ("Availability", availability),
        ("Number of reviews", "0"),
    )
    table = "".join(f"<tr><th>{k}</th><td>{_e(v)}</td></tr>\n" for k, v in rows)
    return "".join(
        [
            _HEAD.format(title=_e(book.title)),
            '<ul class="breadcrumb">\n'
            '<li><a href="../../catalogue/page-1.html">Home</a></li>\n'
            '<li><a href="../../catalogue/page-1.html">Books</a></li>\n'
            f'<li><a href="{cat_href}">{_e(_CATEGORIES[book.category])}</a></li>\n'
            f'<li class="active">{_e(book.title)}</li>\n</ul>\n',
            '<article class="product_page">\n<div class="product_main">\n',
            f"<h1>{_e(book.title)}</h1>\n",
            f'<p class="price_color">{book.price_text}</p>\n',
            f'<p class="instock availability">\n    <i class="icon-ok"></i>\n'
            f"        {availability}\n</p>\n",
            "</div>\n",
            '<div id="product_description" class="sub-header"><h2>Product Description</h2>'
            f"</div>\n<p>A fine book about {_e(book.title)}.</p>\n",
            '<table class="table table-striped">\n',
            table,
            "</table>\n</article>\n",
            _TAIL,
        ]
    )


@functools.lru_cache(maxsize=8)
def _build(books: int, per_page: int) -> _Shop:
    if books < 1 or per_page < 1:
        raise ValueError("books and per_page must be >= 1")
    pages: dict[str, bytes] = {}
    shop = _Shop(books=_books(books), per_page=per_page, pages=pages)
    for n in range(1, shop.list_count + 1):
        pages[f"/catalogue/page-{n}.html"] = _list_page(shop, n).encode()
    for cat in range(len(_CATEGORIES)):
        pages[_category_path(cat)] = _category_page(shop, cat).encode()
    for book in shop.books:
        pages[f"/books/{book.slug}/index.html"] = _detail_page(book).encode()
    return shop


def expected_books(books: int = 100) -> list[dict[str, object]]:
    """``{"title", "price", "stock", "upc"}`` for every book, in catalogue order."""
    return [
        {"title": b.title, "price": b.pence / 100, "stock": b.stock, "upc": b.upc}
        for b in _books(books)
    ]


def book_paths(books: int = 100) -> list[str]:
    """Paths of the detail pages, in catalogue order (``/books/<slug>/index.html``)."""
    return [f"/books/{b.slug}/index.html" for b in _books(books)]


def list_paths(books: int = 100, per_page: int = 20) -> list[str]:
    """Paths of the catalogue list pages, in order."""
    return [f"/catalogue/page-{n}.html" for n in range(1, _build(books, per_page).list_count + 1)]


def category_paths() -> list[str]:
    """Paths of the category pages."""
    return [_category_path(c) for c in range(len(_CATEGORIES))]


_NOT_FOUND = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body></body></html>"


async def _handle(request: web.Request) -> web.StreamResponse:
    request.app[REQUESTS][request.path_qs] += 1
    path = request.path
    if path == "/":
        raise web.HTTPFound("/catalogue/page-1.html")
    body = request.app[_SHOP].pages.get(path)
    if body is None or request.query_string:
        return web.Response(
            status=404, body=_NOT_FOUND, headers={"Content-Type": "text/html; charset=utf-8"}
        )
    return web.Response(body=body, headers={"Content-Type": "text/html; charset=utf-8"})


def make_app(books: int = 100, per_page: int = 20) -> web.Application:
    """The book shop as an aiohttp application (GET and HEAD)."""
    app = web.Application()
    app[_SHOP] = _build(books, per_page)
    app[REQUESTS] = Counter()
    app.router.add_get("/{tail:.*}", _handle)
    return app
