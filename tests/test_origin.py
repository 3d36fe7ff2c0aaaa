"""Origins have one spelling: the canonical URL's own start, from text or from a URL."""

from __future__ import annotations

import pytest
from yarl import URL

from crawler.urls.canon import canonical, parsed
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
