"""Unit tests of `crawler.model.response.Response`, built directly (no server, no fetcher)."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import Any

import pytest
from multidict import CIMultiDict
from yarl import URL

from crawler.html import nesting
from crawler.model.request import Request
from crawler.model.response import Response
from crawler.model.spider import Spider
from crawler.urls.resolve import JoinCache

PAGE_URL = "http://example.com/dir/page.html"


def make(body: bytes, content_type: str | None = "text/html", url: str = PAGE_URL,
         status: int = 200) -> Response:
    headers: CIMultiDict[str] = CIMultiDict()
    if content_type is not None:
        headers["Content-Type"] = content_type
    return Response(URL(url), status, headers, body)


class DemoSpider(Spider):
    name = "demo"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url}

    async def parse_item(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url}


# -- character encodings -------------------------------------------------------------------


def test_plain_utf8_is_the_default() -> None:
    r = make("<p>héllo — ✓</p>".encode())
    assert r.encoding == "utf-8"
    assert r.text == "<p>héllo — ✓</p>"


def test_charset_from_utf8_bom() -> None:
    r = make(codecs.BOM_UTF8 + "<p>é</p>".encode(), "text/html")
    assert r.text == "<p>é</p>"  # BOM removed, not decoded as U+FEFF


@pytest.mark.parametrize(
    ("bom", "codec"),
    [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")],
)
def test_charset_from_utf16_bom(bom: bytes, codec: str) -> None:
    r = make(bom + "<title>Ünïcode</title>".encode(codec), "text/html")
    assert r.text == "<title>Ünïcode</title>"
    assert r.title == "Ünïcode"


def test_charset_from_header() -> None:
    r = make("<p>é</p>".encode("iso-8859-15"), "text/html; charset=ISO-8859-15")
    assert r.text == "<p>é</p>"


def test_charset_from_header_quoted() -> None:
    r = make("<p>Ж</p>".encode("koi8-r"), 'text/html; charset="koi8-r"')
    assert r.text == "<p>Ж</p>"


def test_charset_from_meta_charset() -> None:
    body = '<html><head><meta charset="koi8-r"></head><p>Привет</p>'.encode("koi8-r")
    r = make(body, "text/html")
    assert "Привет" in r.text


def test_charset_from_meta_http_equiv() -> None:
    body = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-2">'
        "</head><p>ąś</p>"
    ).encode("iso-8859-2")
    r = make(body, "text/html")
    assert "<p>ąś</p>" in r.text


def test_header_beats_meta() -> None:
    body = '<meta charset="utf-8"><p>é</p>'.encode("cp1252")
    r = make(body, "text/html; charset=windows-1252")
    assert "<p>é</p>" in r.text


def test_bom_beats_header() -> None:
    body = codecs.BOM_UTF8 + "<p>é</p>".encode()
    r = make(body, "text/html; charset=windows-1252")
    assert r.text == "<p>é</p>"  # not "Ã©"


@pytest.mark.parametrize("label", ["latin-1", "ISO-8859-1", "us-ascii", "iso8859-1"])
def test_latin1_labels_decode_as_windows_1252(label: str) -> None:
    r = make(b"<p>\x93quoted\x94 \x80</p>", f"text/html; charset={label}")
    assert r.text == "<p>\u201cquoted\u201d \u20ac</p>"


def test_latin1_in_meta_decodes_as_windows_1252() -> None:
    r = make(b'<meta charset="iso-8859-1"><p>\x93x\x94</p>', "text/html")
    assert "\u201cx\u201d" in r.text


def test_unknown_charset_label_falls_back_to_utf8() -> None:
    r = make("<p>é</p>".encode(), "text/html; charset=no-such-charset-xyz")
    assert r.encoding == "utf-8"
    assert r.text == "<p>é</p>"


def test_unknown_meta_charset_falls_back_to_utf8() -> None:
    r = make('<meta charset="bogus-label"><p>é</p>'.encode(), "text/html")
    assert r.text.endswith("<p>é</p>")


def test_invalid_utf8_becomes_replacement_characters() -> None:
    r = make(b"<p>ok \xff\xfe\xc3( end</p>", "text/html; charset=utf-8")
    text = r.text
    assert "\ufffd" in text
    assert text.startswith("<p>ok ")
    assert text.endswith(" end</p>")


# -- title ---------------------------------------------------------------------------------


def test_title_collapses_whitespace() -> None:
    r = make(b"<html><head><title>\n  Hello \t\n  World  </title></head></html>")
    assert r.title == "Hello World"


def test_title_none_without_title() -> None:
    assert make(b"<html><body><h1>No title</h1></body></html>").title is None


def test_title_none_for_non_html() -> None:
    assert make(b"<title>x</title>", "text/plain").title is None


# -- links ---------------------------------------------------------------------------------


def test_links_absolute_canonical_unique_in_order() -> None:
    body = b"""<html><body>
        <a href="b.html">1</a>
        <a href="/a.html#frag">2</a>
        <a href="b.html#other">dup of 1</a>
        <a href="HTTP://Other.EXAMPLE:80/X">3</a>
        <a href=" ../up.html ">4</a>
        <a href="/a.html">dup of 2</a>
        <a>no href</a>
        <a href="?q=1">5</a>
    </body></html>"""
    assert make(body).links() == [
        "http://example.com/dir/b.html",
        "http://example.com/a.html",
        "http://other.example/X",
        "http://example.com/up.html",
        "http://example.com/dir/page.html?q=1",
    ]


def test_pages_given_one_join_cache_share_it() -> None:
    joins = JoinCache()
    body = b'<a href="a.html">a</a><a href="../b.html#x">b</a>'
    pages = [Response(URL(f"http://example.com/dir/p{n}.html"), 200,
                      {"Content-Type": "text/html"}, body, joins=joins) for n in range(2)]
    assert pages[0].links() == ["http://example.com/dir/a.html", "http://example.com/b.html"]
    assert len(joins) == 2  # what the first page joined, the second finds
    assert pages[1].links() == pages[0].links() and len(joins) == 2
    assert [r.key for r in pages[1].follow_all()] == pages[0].links()
    assert make(body).links() == pages[0].links() and len(joins) == 2  # its own cache


def test_links_respect_base_href() -> None:
    body = b'<head><base href="https://cdn.example.org/root/"></head><a href="x/y">1</a>'
    assert make(body).links() == ["https://cdn.example.org/root/x/y"]


def test_relative_base_href_resolves_against_page() -> None:
    body = b'<head><base href="/other/"></head><a href="x">1</a>'
    assert make(body).links() == ["http://example.com/other/x"]


def test_links_drop_non_http_and_malformed() -> None:
    body = b"""
        <a href="mailto:a@example.com">m</a>
        <a href="javascript:void(0)">j</a>
        <a href="tel:+15550100">t</a>
        <a href="http://[::1">broken</a>
        <a href="ftp://example.com/f">f</a>
        <a href="/ok">ok</a>
    """
    assert make(body).links() == ["http://example.com/ok"]


def test_links_with_custom_selector() -> None:
    body = b'<nav><a href="/n">n</a></nav><main><a href="/m">m</a></main>'
    assert make(body).links("main a[href]") == ["http://example.com/m"]


def test_the_default_selector_finds_what_the_css_query_finds() -> None:
    # "a[href]" is served by a tag walk instead of lexbor's CSS engine: the same elements in
    # the same order, whatever their case, namespace or nesting.
    body = (b"<html><head><title>t</title><base target=_self></head><body>"
            b"<a href=/1>x</a><A HREF='/2'>y</A><a>no href</a><svg><a href='/3'/></svg>"
            b"<math><a href=/4>m</a></math><table><tr><td><a href=''>empty</a>"
            b"<p><a href='  /5  ' name=n><a href=/1>again</a></p><template><a href=/6></a>"
            b"</template></body></html>")
    page = make(body)
    by_css = [n.attributes["href"] for n in page.css("a[href]")]
    assert [r.url for r in page.follow_all()] == \
        [r.url for r in make(body).follow_all("body a[href], head a[href]")]
    assert len(page.follow_all()) == len(by_css) == 7
    assert page.links() == make(body).links("html a[href]")
    assert page.base_url == URL(PAGE_URL)  # a <base> without href is no base


def test_urljoin() -> None:
    r = make(b"<p>x</p>")
    assert r.urljoin("../a#f") == "http://example.com/a"
    assert r.urljoin("mailto:a@b.c") is None


# -- CSS ------------------------------------------------------------------------------------


def test_css_and_css_first() -> None:
    r = make(b'<ul><li class="x">one</li><li class="x">two</li><li>three</li></ul>')
    assert [n.text() for n in r.css("li.x")] == ["one", "two"]
    first = r.css_first("li")
    assert first is not None
    assert first.text() == "one"
    assert r.css_first("table") is None
    assert r.css("table") == []


# -- non-HTML and sniffing ------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/pdf", "text/plain", "text/plain; charset=utf-8",
                     "application/json", "image/png"]
)
def test_non_html_gives_no_links_or_nodes(content_type: str) -> None:
    r = make(b'<html><a href="/x">x</a><title>t</title></html>', content_type)
    assert r.is_html is False
    assert r.links() == []
    assert r.css("a") == []
    assert r.css_first("a") is None
    assert r.tree is None
    assert r.follow_all() == []


@pytest.mark.parametrize(
    "content_type", ["text/html", "TEXT/HTML; charset=utf-8", "application/xhtml+xml"]
)
def test_html_content_types(content_type: str) -> None:
    r = make(b'<a href="/x">x</a>', content_type)
    assert r.is_html is True
    assert r.links() == ["http://example.com/x"]


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE html><html><a href="/x">x</a></html>',
        b'  \n<!doctype HTML><a href="/x">x</a>',
        b'<html><body><a href="/x">x</a></body></html>',
    ],
)
def test_missing_content_type_with_html_body_is_sniffed_as_html(body: bytes) -> None:
    r = make(body, None)
    assert r.content_type == ""
    assert r.is_html is True
    assert r.links() == ["http://example.com/x"]


def test_missing_content_type_with_binary_body_is_not_html() -> None:
    r = make(b"%PDF-1.7\n<a href='/x'>", None)
    assert r.is_html is False
    assert r.links() == []


def test_content_type_property() -> None:
    assert make(b"", "Text/HTML; Charset=UTF-8").content_type == "text/html"


# -- follow ----------------------------------------------------------------------------------


def test_follow_joins_relative_and_keeps_options() -> None:
    spider = DemoSpider()
    r = make(b"<p>x</p>")
    req = r.follow("../other.html#f", spider.parse_item, cb_kwargs={"n": 1}, priority=7)
    assert isinstance(req, Request)
    assert req.url == "http://example.com/other.html"
    assert str(req.absolute_url) == "http://example.com/other.html"
    assert req.callback == "parse_item"
    assert req.cb_kwargs_json == '{"n":1}'
    assert req.priority == 7


def test_follow_uses_base_href() -> None:
    r = make(b'<base href="http://b.example/base/"><p>x</p>')
    assert r.follow("x").url == "http://b.example/base/x"


def test_follow_of_mailto_gives_request_whose_url_is_invalid() -> None:
    req = make(b"<p>x</p>").follow("mailto:someone@example.com")
    assert isinstance(req, Request)
    with pytest.raises(ValueError):
        _ = req.absolute_url


def test_follow_all_gives_requests_for_each_link() -> None:
    spider = DemoSpider()
    r = make(b'<a href="/a">a</a><a href="/b">b</a><a href="/a#x">a</a><a href="mailto:x@y">')
    reqs = r.follow_all(callback=spider.parse_item, priority=2)
    # Every link, in page order: the crawler counts the repeat and the mailto: as skipped.
    assert [q.url for q in reqs] == ["http://example.com/a", "http://example.com/b",
                                     "http://example.com/a", "mailto:x@y"]
    assert all(q.callback == "parse_item" and q.priority == 2 for q in reqs)
    assert str(reqs[2].absolute_url) == "http://example.com/a"
    with pytest.raises(ValueError):
        _ = reqs[3].absolute_url


# -- large and odd documents ----------------------------------------------------------------


def test_deeply_nested_html_parses() -> None:
    # 10,000 deep costs lexbor a tenth of a second: parsed as it is. Past DEEP_ABOVE tags,
    # as in browsers, the tree is no deeper than a cap; the link is kept either way.
    for depth, divs in ((10_000, 10_000), (nesting.DEEP_ABOVE + 10, nesting.MAX_DEPTH)):
        body = (b"<html><body>" + b"<div>" * depth + b'<a href="/deep">d</a>'
                + b"</div>" * depth)
        r = make(body)
        assert r.links() == ["http://example.com/deep"]
        assert divs - 2 <= len(r.css("div")) <= divs  # with <html>, <body> under the cap


def test_five_megabyte_single_line_page_parses() -> None:
    filler = b"<span>" + b"x" * 1000 + b"</span>"
    body = b"<html><head><title>big</title></head><body>" + filler * 5000
    body += b'<a href="/end">end</a></body></html>'
    assert len(body) > 5_000_000
    assert b"\n" not in body
    r = make(body)
    assert r.title == "big"
    assert r.links() == ["http://example.com/end"]


def test_json_body() -> None:
    r = make(b'{"a": [1, 2]}', "application/json")
    assert r.json() == {"a": [1, 2]}


def test_url_status_and_repr() -> None:
    r = make(b"", url="http://example.com/x", status=404)
    assert r.url == "http://example.com/x"
    assert r.status == 404
    assert "404" in repr(r)


def test_base_outside_head_still_counts() -> None:
    # Browsers take the first <base href> wherever it is; a parser moves a late one to <body>.
    r = make(b'<p>hi</p><base href="/sub/"><a href="x">1</a>')
    assert r.links() == [str(URL(PAGE_URL).join(URL("/sub/x")))]
