"""Unit tests of `crawler.urls.canon`: the one canonical form a URL is deduplicated under."""

from __future__ import annotations

import pytest
from yarl import URL

from crawler.urls import canon as urls_module
from crawler.urls.canon import (
    MAX_URL_LENGTH,
    canonical,
    host_key,
    join,
    parse_absolute,
    parsed,
    tidy_query,
)
from crawler.urls.origin import origin_of
from crawler.urls.resolve import JoinCache, Resolver

BASE = URL("https://base.example/dir/page.html?x=1")


def canon(text: str) -> str | None:
    url = canonical(URL(text))
    return None if url is None else str(url)


# -- case, ports, fragment, root ---------------------------------------------------------


def test_scheme_and_host_lower_cased_path_case_kept() -> None:
    assert canon("HTTP://WWW.Example.COM/Some/Path.HTML") == "http://www.example.com/Some/Path.HTML"
    assert str(parse_absolute("HtTpS://Example.Org/CaseSensitive")) == (
        "https://example.org/CaseSensitive"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://h:80/x", "http://h/x"),
        ("https://h:443/x", "https://h/x"),
        ("http://h:8080/x", "http://h:8080/x"),
        ("https://h:80/x", "https://h:80/x"),
        ("http://h:443/x", "http://h:443/x"),
    ],
)
def test_default_ports_removed_others_kept(text: str, expected: str) -> None:
    assert str(parse_absolute(text)) == expected


def test_fragment_removed() -> None:
    assert canon("http://h/a#section") == "http://h/a"
    assert canon("http://h/a?q=1#") == "http://h/a?q=1"
    assert join(BASE, "#top") == "https://base.example/dir/page.html?x=1"


@pytest.mark.parametrize("text", ["http://h", "http://h/", "HTTP://H:80/#x", " http://h:80 "])
def test_spellings_of_the_root_are_one_url(text: str) -> None:
    assert str(parse_absolute(text)) == "http://h/"
    assert str(join(BASE, text)) == "http://h/"


@pytest.mark.parametrize("text", ["http://h:80/", "HTTP://H:80", "https://h:443/x"])
def test_canonical_url_objects_do_not_remember_a_default_port(text: str) -> None:
    # The canonical URL is returned as a yarl URL; two spellings of one URL must be equal
    # (and hash alike) as objects too, not only when printed.
    plain = parse_absolute(text.replace(":80", "").replace(":443", ""))
    assert parse_absolute(text) == plain
    assert hash(parse_absolute(text)) == hash(plain)
    assert join(BASE, text) == plain
    assert canonical(URL(text)) == plain


def test_root_with_query_keeps_query() -> None:
    assert str(parse_absolute("http://h?a=1")) == "http://h/?a=1"


# -- paths, percent-encoding, IDNA, query --------------------------------------------------


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://h/a/./b/../c", "http://h/a/c"),
        ("http://h/a/b/../../..", "http://h/"),
        ("../up/x", "https://base.example/up/x"),
        ("./same", "https://base.example/dir/same"),
        ("sub/../other", "https://base.example/dir/other"),
    ],
)
def test_dot_segments_removed(href: str, expected: str) -> None:
    assert str(join(BASE, href)) == expected


def test_percent_encoding_normalised() -> None:
    # Unreserved characters are decoded, other escapes use upper-case hex.
    assert canon("http://h/%7euser/%7Eb") == "http://h/~user/~b"
    assert canon("http://h/a%2fb%3f") == "http://h/a%2Fb%3F"
    assert canon("http://h/%41") == "http://h/A"
    assert canon("http://h/%7e") == canon("http://h/~")


def test_reserved_escapes_keep_their_meaning() -> None:
    # Decoding these would change which resource is meant.
    assert canon("http://h/a%2Fb") == "http://h/a%2Fb"
    assert canon("http://h/a%3Fb") == "http://h/a%3Fb"
    assert canon("http://h/?a=%26b&c=1") == "http://h/?a=%26b&c=1"
    assert canon("http://h/?q=a%2Bb") == "http://h/?q=a%2Bb"


def test_non_ascii_path_is_percent_encoded() -> None:
    assert canon("http://h/ü") == "http://h/%C3%BC"


def test_idna_hosts() -> None:
    assert str(parse_absolute("http://bücher.de/")) == "http://xn--bcher-kva.de/"
    assert str(parse_absolute("http://BÜCHER.de/")) == "http://xn--bcher-kva.de/"
    assert parse_absolute("http://bücher.de/") == parse_absolute("http://xn--bcher-kva.de/")


def test_query_kept_as_is_not_sorted() -> None:
    assert canon("http://h/p?z=1&a=2&z=0") == "http://h/p?z=1&a=2&z=0"
    assert canon("http://h/p?b&a") == "http://h/p?b&a"


# -- join ---------------------------------------------------------------------------------


@pytest.mark.parametrize("href", ["  /x", "/x  ", "\t\n/x\r\n", "\f /x \n"])
def test_whitespace_around_hrefs_stripped(href: str) -> None:
    assert str(join(BASE, href)) == "https://base.example/x"


def test_protocol_relative_uses_base_scheme() -> None:
    assert str(join(BASE, "//other.example/x")) == "https://other.example/x"
    assert str(join(URL("http://h/"), "//other.example/x")) == "http://other.example/x"


def test_relative_query_and_absolute_hrefs() -> None:
    assert str(join(BASE, "?q=2")) == "https://base.example/dir/page.html?q=2"
    assert str(join(BASE, "HTTP://Other.COM:443/P")) == "http://other.com:443/P"


@pytest.mark.parametrize(
    "href",
    [
        "mailto:someone@example.com",
        "javascript:void(0)",
        "JavaScript:alert(1)",
        "tel:+1-555-0100",
        "data:text/html,<p>x</p>",
        "ftp://ftp.example.com/file",
        "file:///etc/passwd",
    ],
)
def test_non_http_schemes_give_none(href: str) -> None:
    assert join(BASE, href) is None
    with pytest.raises(ValueError):
        parse_absolute(href)


@pytest.mark.parametrize("href", ["http://[::1", "http://exa mple.com/", "http://h:99999/"])
def test_malformed_urls_give_none(href: str) -> None:
    assert join(BASE, href) is None


@pytest.mark.parametrize("text", ["http://[::1", "http://exa mple.com/", "http://h:99999/"])
def test_parse_absolute_malformed_raises_readable_value_error(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_absolute(text)
    message = str(info.value)
    assert text in message
    assert "Traceback" not in message


@pytest.mark.parametrize("text", ["", "   ", "/relative/path", "example.com/x"])
def test_parse_absolute_refuses_non_absolute(text: str) -> None:
    with pytest.raises(ValueError, match="absolute"):
        parse_absolute(text)


def test_over_long_hrefs_give_none() -> None:
    long_path = "a" * MAX_URL_LENGTH
    assert join(BASE, "/" + long_path) is None
    assert join(BASE, "http://h/" + long_path) is None
    # Short enough as an href, too long once resolved against the base.
    relative = "x" * (MAX_URL_LENGTH - 10)
    assert len(relative) <= MAX_URL_LENGTH
    assert join(BASE, relative) is None


def test_url_of_exactly_max_length_is_kept() -> None:
    prefix = "http://h/"
    text = prefix + "a" * (MAX_URL_LENGTH - len(prefix))
    assert len(text) == MAX_URL_LENGTH
    assert str(join(BASE, text)) == text


def test_parse_absolute_refuses_over_long_urls() -> None:
    # A spider's `Request("http://...long...")` goes through parse_absolute, not join: the
    # length cap must hold there too, or over-long URLs reach the state file.
    with pytest.raises(ValueError):
        parse_absolute("http://h/" + "a" * MAX_URL_LENGTH)


def test_canonical_refuses_non_http_and_hostless() -> None:
    assert canonical(URL("ftp://h/x")) is None
    assert canonical(URL("/relative")) is None
    assert canonical(URL("mailto:a@b.c")) is None


def test_canonical_is_idempotent() -> None:
    for text in ["HTTP://H/a/../b/%7e?q=%7e#f", "https://bücher.de", "http://h/ü?x=ü"]:
        once = canonical(URL(text))
        assert once is not None
        assert canonical(parsed(once)) == once
        assert canonical(URL(once)) == once


# -- host_key -----------------------------------------------------------------------------


def test_host_key_is_host_and_effective_port() -> None:
    assert host_key(parsed(parse_absolute("http://Example.com/a"))) == "example.com:80"
    assert host_key(parsed(parse_absolute("https://example.com/a"))) == "example.com:443"
    assert host_key(parsed(parse_absolute("http://example.com:8080/"))) == "example.com:8080"


def test_host_key_same_for_one_server_different_for_others() -> None:
    a = host_key(parsed(parse_absolute("http://h/1")))
    assert a == host_key(parsed(parse_absolute("HTTP://H:80/2?x#y")))
    assert a != host_key(parsed(parse_absolute("https://h/1")))
    assert a != host_key(parsed(parse_absolute("http://h:81/1")))
    assert a != host_key(parsed(parse_absolute("http://sub.h/1")))


def test_tidy_query_strips_tracking_and_sorts_only_when_asked() -> None:
    url = parse_absolute("http://h/p?b=2&utm_source=x&a=1&FBCLID=z&UTM_x=y")
    assert str(tidy_query(url, strip_tracking=False, sort=False)) == str(url)
    assert str(tidy_query(url, strip_tracking=True, sort=False)) == "http://h/p?b=2&a=1"
    assert str(tidy_query(url, strip_tracking=True, sort=True)) == "http://h/p?a=1&b=2"
    assert str(tidy_query(parse_absolute("http://h/p?utm_a=1"), strip_tracking=True, sort=False)) \
        == "http://h/p"


BASES = ["http://a.test/x", "http://b.test/y", "https://b.test/z", "http://h.test",
         "http://h.test/a/b/page.html?x=1#top", "https://h.test:8443/a/", "http://h.test",
         "http://other.test/a/b/c", "http://h.test/a/b/page.html", "http://u:p@h.test:80/x",
         "https://bücher.test/ä/ö.html", "HTTP://H.TEST:443/"]
HREFS = ["os.html", "os.html#a", "os.html#b", "../up.html#x", "./same.html", "/abs#f",
         "/abs", "//cdn.test/x.js", "https://h.test/full#f", "?q=2", "?q=2#f", "#only", "",
         "  spaced.html  ", "mailto:a@b.test", "http://[bad", "sub/dir/", "..", "%41%2f.html",
         "javascript:void(0)", "HTTP://H.TEST/Case", "/p/12", "/a/b.html", "/", "/a/./b",
         "/a/../b", "/a//b", "/.well-known/x", "/A-B_c~d/", "/a/b..c", "/x?y=1", "/ä",
         "/follow?total=1&show=2&n=3", "/a?b", "/a?b=", "/a?=b", "/a?a&&b", "/a?", "/a?b#c",
         "/a?b=/c", "/a?b=%41", "/a?b+c", "/a?B=C.d~e_f-g", "http://", "https://", "//",
         "///about", "http:///about", "//?x", "http:a", "a", "../a", ".", "HTTPS://x.test/",
         "//x.test/p", "/a#" + "x" * 2100, "/" + "p" * 200, "x" * 2100, "http:\\\\x.test"]


def test_the_resolver_cache_gives_what_join_gives() -> None:
    joins = JoinCache()
    # Every base against every href, twice (the second time from the cache), in an order
    # that has each href cached under one base before it is asked under the next.
    for _ in range(2):
        for base_text in BASES:
            base = URL(base_text)
            resolver = Resolver(base, joins)
            for href in HREFS:
                expected = join(base, href)
                assert resolver.join(href) == (None if expected is None else str(expected)), \
                    (base_text, href)


def test_the_join_cache_is_the_crawls_own_and_bounded() -> None:
    # No hidden global: resolvers fill the cache they are given, and only that one.
    joins, other = JoinCache(size=3), JoinCache()
    for href in ("a.html", "b.html", "a.html"):
        assert Resolver(URL("http://h.test/dir/"), joins).join(href) == f"http://h.test/dir/{href}"
    assert len(joins) == 2 and len(other) == 0
    assert joins.entries[("http://h.test/dir", "a.html")] == "http://h.test/dir/a.html"
    Resolver(URL("http://h.test/"), joins).join("c.html")
    Resolver(URL("http://h.test/"), joins).join("d.html")  # full: emptied, then added
    assert list(joins.entries) == [("http://h.test", "d.html")]
    Resolver(URL("http://h.test/")).join("e.html")  # a cache of its own
    assert len(joins) == 1 and len(other) == 0


def test_origin_of_finds_the_origin_of_every_canonical_url_without_parsing() -> None:
    keys = {Resolver(URL(b)).join(h) for b in BASES for h in HREFS} - {None}
    keys |= {"http://h/", "https://h/", "http://u:p@h.test:8080/a?b", "http://[::1]:81/x",
             "https://xn--bcher-kva.test/%C3%A4"}
    for key in keys:
        assert key is not None
        url = URL(key, encoded=True)
        assert origin_of(key) == f"{url.scheme}://{url.raw_authority}", key
    assert origin_of("http://h") is None


def test_the_fast_path_keeps_the_length_limit() -> None:
    base = URL("http://" + "a" * 50 + ("." + "b" * 50) * 36 + ".test/")
    href = "/" + "p" * 200
    assert Resolver(base).join(href) is None
    assert join(base, href) is None


# -- what a page links to is what is fetched ------------------------------------------------


@pytest.mark.parametrize(("href", "expected"), [
    ("/%zz", "http://h/%zz"),
    ("/a%zzb?x=%q&y=%4", "http://h/a%zzb?x=%q&y=%4"),
    ("/100%", "http://h/100%"),
    ("/%zz/%41/%2f", "http://h/%zz/A/%2F"),  # valid escapes still normalised beside it
    ("/%zz/./x/../y", "http://h/%zz/y"),
    ("/%25zz", "http://h/%25zz"),  # an encoded percent sign stays encoded
])
def test_a_percent_sign_not_followed_by_two_hex_digits_is_kept(href: str, expected: str) -> None:
    # Browsers send "/%zz" as it is; "/%25zz" would be another URL than the page links to.
    base = URL("http://h/dir/")
    assert str(join(base, href)) == expected
    assert Resolver(base).join(href) == expected
    assert str(parse_absolute("http://h" + href)) == expected


def test_an_escape_in_the_base_like_the_mask_is_left_as_it_is() -> None:
    base = URL("http://h/a%EE%80%80/", encoded=True)
    assert str(join(base, "x%zz")) == "http://h/a%EE%80%80/x%25zz"  # masked never: kept


def test_a_base_with_a_lone_percent_sign_resolves_relative_links_under_it() -> None:
    base = join(URL("http://h/"), "/a%zz/page")
    assert base is not None
    assert str(join(parsed(base), "next")) == "http://h/a%zz/next"


@pytest.mark.parametrize("text", [
    "http://u:p@h.test/a", "http://u@h.test/a", "http://:p@h.test/a", "http://u:p@H.TEST:80/a",
])
def test_credentials_are_never_part_of_a_canonical_url(text: str) -> None:
    assert canon(text) == "http://h.test/a"
    assert str(parse_absolute(text)) == "http://h.test/a"
    assert str(join(URL("http://x.test/"), text)) == "http://h.test/a"
    assert Resolver(URL("http://x.test/")).join(text) == "http://h.test/a"
    assert Resolver(URL("http://u:p@h.test/dir/")).join("b") == "http://h.test/dir/b"
    assert Resolver(URL("http://u:p@h.test/dir/")).join("/b") == "http://h.test/b"


@pytest.mark.parametrize(("text", "expected"), [
    ("http://u:p@h/", True), ("//u@h/x", True), ("HTTPS://:p@h", True), ("http://h/a@b", False),
    ("http://h/?to=a@b", False), ("mailto:a@b.test", False), ("a@b", False), ("/x@y", False),
])
def test_has_credentials(text: str, expected: bool) -> None:
    assert urls_module.has_credentials(text) is expected
