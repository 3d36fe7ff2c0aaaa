"""A fetched page as a spider sees it: status, headers, body, text, CSS queries, links."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any, Unpack

from selectolax.lexbor import LexborHTMLParser, LexborNode
from yarl import URL

from crawler.config import MAX_LINKS
from crawler.errors import SpiderError
from crawler.html import encoding, nesting
from crawler.model import forms, sitemaps, specs
from crawler.model.callsite import located, locating
from crawler.model.forms import Form
from crawler.model.request import Callback, Request, callback_name, check_priority, encode_kwargs
from crawler.model.sitemaps import Sitemap
from crawler.model.specs import RequestOptions
from crawler.urls import canon as urls
from crawler.urls.canon import CanonicalURL
from crawler.urls.resolve import JoinCache, Resolver

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
LINKS = "a[href]"  # the default link selector
_SNIFF = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title")


def is_html_type(content_type: str | None) -> bool:
    """True for HTML media types; None (no Content-Type) is left to sniffing."""
    return bool(content_type) and _media_type(content_type) in HTML_TYPES


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class Response:
    """A response handed to a spider callback. Parsing is lazy: nothing is parsed until a
    CSS query, `title` or `links()` asks for it, and non-HTML bodies are never parsed."""

    def __init__(self, url: URL, status: int, headers: Mapping[str, str], body: bytes, *,
                 depth: int = 0, robots_sitemaps: Sequence[str] = (),
                 max_links: int = MAX_LINKS, joins: JoinCache | None = None,
                 key: CanonicalURL | None = None) -> None:
        self._url = url
        # The crawl passes the request's key, which `url` is the parsed view of.
        self._text: str = str(url) if key is None else key
        # The crawl passes its one cache to every page; a Response made alone has its own.
        self._joins = JoinCache() if joins is None else joins
        self.status = status
        self.headers = headers
        self.body = body
        self.depth = depth
        self.robots_sitemaps = list(robots_sitemaps)
        """Sitemaps listed in this host's robots.txt (empty if robots.txt is not obeyed)."""
        self.max_links = max_links
        """`links()` and `follow_all()` give at most this many (the crawl's `max_links`)."""
        self.links_over = 0
        """Links that `links()` or `follow_all()` left out for `max_links` (the most in any
        one call): the crawler counts them as skipped."""

    @property
    def url(self) -> str:
        return self._text

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case ("" when absent)."""
        return _media_type(self.headers.get("Content-Type"))

    @cached_property
    def is_html(self) -> bool:
        declared = self.headers.get("Content-Type")
        if declared:
            return is_html_type(declared)
        head = self.body[:512].lstrip().lower()
        return head.startswith(_SNIFF)

    @cached_property
    def encoding(self) -> str:
        return encoding.detect(self.body, self.headers.get("Content-Type"))[0]

    @cached_property
    def text(self) -> str:
        """The body decoded: BOM, then the Content-Type charset, then <meta charset>, then
        UTF-8; undecodable bytes become U+FFFD instead of failing."""
        return encoding.decode(self.body, self.headers.get("Content-Type"))

    @cached_property
    def tree(self) -> LexborHTMLParser | None:
        """The parsed HTML document, or None for a non-HTML response."""
        # Nesting past a browser's depth cap is flattened first: lexbor's cost grows with
        # the square of the depth (a page of 200,000 nested <div>s took 90 s).
        return LexborHTMLParser(nesting.defused(self.text)) if self.is_html else None

    def css(self, selector: str) -> list[LexborNode]:
        tree = self.tree
        return [] if tree is None else tree.css(selector)

    def css_first(self, selector: str) -> LexborNode | None:
        tree = self.tree
        return None if tree is None else tree.css_first(selector)

    @cached_property
    def title(self) -> str | None:
        """The <title> text with whitespace runs collapsed, or None if there is none."""
        node = self._first("title")
        return None if node is None else " ".join(node.text(deep=True).split())

    @cached_property
    def base_url(self) -> URL:
        """The URL relative links resolve against: <base href> if valid, else the page URL."""
        node = self._first("base", "href")  # the first, wherever it is (as browsers do)
        href = node.attrs.get("href") if node is not None else None
        if href:
            joined = urls.join(self._url, href)
            if joined is not None:
                return urls.parsed(joined)
        return self._url

    def _first(self, tag: str, attribute: str | None = None) -> LexborNode | None:
        """The first element named `tag` (with `attribute`, if given), in document order.

        A tag walk, not a CSS query: the first CSS query on a document sets up lexbor's
        selector engine, which costs half as much as parsing the page."""
        tree = self.tree
        if tree is None:
            return None
        return next((n for n in tree.tags(tag) if attribute is None or attribute in n.attrs),
                    None)

    def _hrefs(self, selector: str) -> list[str]:
        """The href of each element the selector matches that has one, in document order,
        from the first `max_links` elements: what one page costs stays in proportion to
        the cap, not to the page (a million links would be a million requests)."""
        tree = self.tree
        if tree is None:
            return []
        cap = self.max_links
        nodes: Iterable[LexborNode]
        if selector != LINKS:
            nodes = tree.css(selector)
        elif len(self.text) < 3 * cap or \
                self.text.count("<a") + self.text.count("<A") <= cap:  # no more <a> than that
            nodes = tree.tags("a")  # a tag walk (see `_first`): same elements, less work
        else:  # a walk that lists none: a million links must not become a million nodes
            nodes = (node for node in tree.root.traverse() if node.tag == "a") \
                if tree.root is not None else ()
        rest = iter(nodes)
        hrefs = [node.attrs.get("href") for node in itertools.islice(rest, cap)]
        over = sum(1 for node in rest if "href" in node.attrs)
        self.links_over = max(self.links_over, over)
        return [href for href in hrefs if href is not None]

    def urljoin(self, href: str) -> CanonicalURL | None:
        """The canonical absolute URL an href points to, or None if it is not crawlable."""
        return urls.join(self.base_url, href)

    def links(self, selector: str = LINKS) -> list[CanonicalURL]:
        """Canonical, fragment-free, absolute http(s) URLs of the links, each once, in page
        order. Malformed, over-long and non-http links (mailto:, javascript:) are left out."""
        resolver = Resolver(self.base_url, self._joins)
        joined = dict.fromkeys(map(resolver.join, self._hrefs(selector)))
        return [key for key in joined if key is not None]

    def follow(self, href: str, callback: Callback | None = None, *,
               cb_kwargs: Mapping[str, Any] | None = None, priority: int = 0,
               **options: Unpack[RequestOptions]) -> Request:
        """A request for `href` resolved against this page. A link that cannot be crawled
        (malformed, mailto:, ...) still gives a Request: the crawler counts it as skipped.
        The keywords of `Request` (method=, headers=, json=, ...) are taken too."""
        try:  # free unless raised: then the error names the spider's line (callsite)
            joined = urls.join(self.base_url, href)
            if joined is None:
                return Request(href, callback, cb_kwargs=cb_kwargs, priority=priority,
                               **options)
            # As a Request of the joined URL would be: its credentials are already dropped.
            return Request.prepared(joined, callback_name(callback),
                                    encode_kwargs(cb_kwargs, joined), check_priority(priority),
                                    key=joined, extra=specs.from_options(joined, options))
        except SpiderError as exc:
            raise located(exc) from None

    def follow_all(self, selector: str = LINKS, callback: Callback | None = None, *,
                   cb_kwargs: Mapping[str, Any] | None = None,
                   priority: int = 0, **options: Unpack[RequestOptions]) -> list[Request]:
        """A request for every link the selector matches, in page order. Repeats and links
        that cannot be crawled (malformed, mailto:, ...) are included: the crawler counts them
        as skipped (duplicate, invalid URL) instead of them vanishing unseen. The keywords of
        `Request` (method=, headers=, ...) apply to every one of them."""
        try:  # the error names the spider's line (callsite)
            name = callback_name(callback)
            kwargs = encode_kwargs(cb_kwargs, self.url)
            extra = specs.from_options(self.url, options)
            priority = check_priority(priority)
        except SpiderError as exc:
            raise located(exc) from None
        join = Resolver(self.base_url, self._joins).join
        prepared = Request.prepared
        return [prepared(href, name, kwargs, priority, key=join(href),
                         credentials="@" in href and urls.has_credentials(href), extra=extra)
                for href in self._hrefs(selector)]

    @locating
    def form(self, selector: str | None = None, *, index: int = 0) -> Form:
        """The page's `index`-th form, or the `index`-th form the CSS selector matches, with
        its fields as a browser would send them: `.fill(name=value)`, then `.submit(...)`
        for the request (see `crawler.model.forms`). SpiderError if there is no such form."""
        return Form(forms.find(self.tree, self.url, selector, index), self._url,
                    self.base_url)

    def sitemap(self) -> Sitemap:
        """The body read as a sitemap (urlset or index, gzipped or not); ValueError if it is
        bigger than the protocol allows."""
        return sitemaps.parse(self.body, self._url)

    def json(self, loads: Callable[[str], Any] = json.loads) -> Any:
        return loads(self.text)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"
