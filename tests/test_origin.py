"""Origins have one spelling: the canonical URL's own start, from text or from a URL. And a
URL has one canonical spelling, as a start URL, a link on a page or a redirect's target."""

from __future__ import annotations

import pytest
from yarl import URL

from crawler.model.request import Request
from crawler.model.response import Response
from crawler.urls.canon import canonical, join, parse_absolute, parsed
from crawler.urls.origin import origin, origin_of

URLS = [
    ("http://a.test/x", "http://a.test"),
    ("http://a.test:80/x", "http://a.test"),
    ("https://a.test:443/", "https://a.test"),
    ("https://a.test:80/", "https://a.test:80"),
    ("http://a.test:8080/x?y#z", "http://a.test:8080"),
    ("HTTP://A.TEST/", "http://a.test"),
    ("http://u:p@a.test:80/", "http://a.test"),
    ("http://[::1]:8080/", "http://[::1]:8080"),
    ("http://[::1]/", "http://[::1]"),
    ("http://bücher.test/", "http://xn--bcher-kva.test"),
]


@pytest.mark.parametrize(("text", "expected"), URLS)
def test_the_origin_of_a_url_and_of_its_canonical_text_agree(text: str, expected: str) -> None:
    url = URL(text)
    canon = canonical(url)
    assert canon is not None
    assert origin(url) == origin(parsed(canon)) == origin_of(canon) == expected


def test_text_without_a_path_has_no_origin() -> None:
    assert origin_of("http://h") is None


# -- one URL, one spelling: the key a URL gets is the same however it reaches the crawl ------

PAGE = "http://page.test/dir/index.html"
TRICKY = [
    # (the URL as a user, a page or a Location header writes it, its canonical key)
    ("http://H.test:80/a", "http://h.test/a"),
    ("https://h.test:443", "https://h.test/"),
    ("http://h.test:8080", "http://h.test:8080/"),
    ("http://h.test", "http://h.test/"),
    ("http://h.test?q=1", "http://h.test/?q=1"),
    ("http://h.test/x#frag", "http://h.test/x"),
    ("http://u:p@h.test:80/x", "http://h.test/x"),
    ("http://h.test/a%zz/b", "http://h.test/a%zz/b"),
    ("http://h.test/100%", "http://h.test/100%"),
    ("http://bücher.test/ü?q=ü", "http://xn--bcher-kva.test/%C3%BC?q=%C3%BC"),
    ("HTTP://BÜCHER.test:80", "http://xn--bcher-kva.test/"),
    ("http://[::1]:80/x", "http://[::1]/x"),
    ("https://[::1]:8443/a/./b/../c", "https://[::1]:8443/a/c"),
    ("http://h.test/%7e/p", "http://h.test/~/p"),
]
RELATIVE = [
    # (an href on PAGE, the canonical key of where it points)
    ("/a%zz/b", "http://page.test/a%zz/b"),
    ("../up#x", "http://page.test/up"),
    ("//H.test:80", "http://h.test/"),
    ("/plain/path", "http://page.test/plain/path"),
    ("?q=1", "http://page.test/dir/index.html?q=1"),
]


def _start_key(text: str) -> str | None:
    return Request(text).key


def _link_key(href: str) -> str:
    body = f'<html><body><a href="{href}">x</a></body></html>'.encode()
    page = Response(parsed(parse_absolute(PAGE)), 200, {"Content-Type": "text/html"}, body)
    [key] = page.links()
    [followed] = page.follow_all()
    assert followed.key == key
    return key


def _redirect_key(location: str) -> str | None:
    # What the engine keys a redirect from PAGE by (PageProcessor._redirect).
    return join(parsed(parse_absolute(PAGE)), location)


@pytest.mark.parametrize(("text", "expected"), TRICKY)
def test_a_start_url_a_link_and_a_redirect_to_one_url_get_one_key(text: str,
                                                                   expected: str) -> None:
    key = _start_key(text)
    assert key == _link_key(text) == _redirect_key(text) == expected
    # The fetcher gets the key's parsed view (the intake makes it): the same origin.
    assert origin_of(expected) == origin(parsed(expected)) == origin(URL(text))


@pytest.mark.parametrize(("href", "expected"), RELATIVE)
def test_a_relative_link_and_a_relative_redirect_get_the_key_of_its_absolute_url(
        href: str, expected: str) -> None:
    assert _link_key(href) == _redirect_key(href) == _start_key(expected) == expected
    assert origin_of(expected) == origin(parsed(expected))
