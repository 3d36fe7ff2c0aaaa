"""Unit tests of the public API pieces: Request, Spider, config, items, scope, loader, errors."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import importlib
import inspect
import json
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

import crawler
from crawler import errors
from crawler.config import SPIDER_SETTINGS, CrawlConfig, layered
from crawler.errors import (
    BadResponse,
    BodyTooLarge,
    ConfigError,
    ConnectError,
    CrawlError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    ProtocolError,
    SpiderError,
    StateFileError,
    TooManyRedirects,
)
from crawler.model.items import encode_item
from crawler.model.loader import load_spider_class
from crawler.model.request import Request
from crawler.model.spider import Spider
from crawler.urls.scope import Scope

# -- Request callbacks ------------------------------------------------------------------------


class MySpider(Spider):
    name = "mine"

    async def parse(self, response: Any) -> AsyncIterator[Any]:
        yield {}

    async def parse_item(self, response: Any) -> AsyncIterator[Any]:
        yield {}

    async def not_a_generator(self, response: Any) -> Any:
        return {}

    def sync_generator(self, response: Any) -> Iterator[Any]:
        yield {}

    def plain_method(self, response: Any) -> Any:
        return {}


async def free_function(response: Any) -> AsyncIterator[Any]:
    yield {}


def test_bound_async_generator_method_is_stored_by_name() -> None:
    spider = MySpider()
    req = Request("http://h/", spider.parse_item)
    assert req.callback == "parse_item"


def test_parse_is_stored_as_none() -> None:
    assert Request("http://h/", MySpider().parse).callback is None
    assert Request("http://h/").callback is None


@pytest.mark.parametrize(
    "make_callback",
    [
        lambda s: free_function,
        lambda s: (lambda response: None),
        lambda s: MySpider.parse_item,  # unbound: no spider to call it on
    ],
    ids=["function", "lambda", "unbound-method"],
)
def test_non_method_callbacks_refused(make_callback: Any) -> None:
    with pytest.raises(SpiderError) as info:
        Request("http://h/", make_callback(MySpider()))
    assert "method of the spider" in str(info.value)
    assert "self." in str(info.value)  # tells what to write


@pytest.mark.parametrize("name", ["not_a_generator", "plain_method"])
def test_methods_returning_a_dict_refused(name: str) -> None:
    callback = getattr(MySpider(), name)
    with pytest.raises(SpiderError) as info:
        Request("http://h/", callback)
    message = str(info.value)
    assert f"callback {name!r}" in message
    assert "returns a dict" in message
    assert "test_api.py:" in message  # where it is defined
    assert "generator" in message  # says what to write instead


def test_sync_generator_methods_accepted() -> None:
    assert Request("http://h/", MySpider().sync_generator).callback == "sync_generator"


def test_cb_kwargs_stored_as_compact_json() -> None:
    req = Request("http://h/", cb_kwargs={"page": 2, "tags": ["a", "é"], "x": None})
    assert req.cb_kwargs_json == '{"page":2,"tags":["a","é"],"x":null}'
    assert json.loads(req.cb_kwargs_json) == {"page": 2, "tags": ["a", "é"], "x": None}


def test_empty_cb_kwargs_stored_as_none() -> None:
    assert Request("http://h/", cb_kwargs={}).cb_kwargs_json is None
    assert Request("http://h/").cb_kwargs_json is None


@pytest.mark.parametrize("value", [{1, 2}, object(), b"bytes"], ids=["set", "object", "bytes"])
def test_cb_kwargs_must_be_json(value: object) -> None:
    with pytest.raises(SpiderError, match="JSON"):
        Request("http://h/", cb_kwargs={"v": value})


def test_cb_kwargs_json_is_strict() -> None:
    # NaN is not JSON (RFC 8259): refuse it rather than store `{"x":NaN}`.
    try:
        req = Request("http://h/", cb_kwargs={"x": float("nan")})
    except SpiderError:
        return
    assert req.cb_kwargs_json is not None
    json.loads(req.cb_kwargs_json, parse_constant=lambda name: pytest.fail(f"not JSON: {name}"))


def test_request_url_forms() -> None:
    req = Request("HTTP://H:80/a#f", priority=3)
    assert req.url == "HTTP://H:80/a#f"
    assert str(req.absolute_url) == "http://h/a"
    assert req.priority == 3
    assert Request(URL("http://h/x")).url == "http://h/x"
    with pytest.raises(ValueError):
        _ = Request("not a url").absolute_url


def test_request_key_is_the_canonical_text_and_cannot_drift_from_url() -> None:
    assert Request("HTTP://H:80/a#f").key == "http://h/a"
    assert Request(URL("http://h/x?b=1")).key == "http://h/x?b=1"
    assert Request("/relative").key is None
    assert Request("http://h/" + "p" * 2100).key is None  # over the length limit
    assert Request(URL("http://h/" + "p" * 2100)).key is None  # the same from a yarl URL
    req = Request("http://h/a")
    with pytest.raises(AttributeError):
        req.url = "http://h/b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        req.key = "http://h/b"  # type: ignore[misc]


def test_request_from_yarl_url_is_canonicalised() -> None:
    # Request accepts `str | URL`; a URL object must get the same canonical form as a string.
    req = Request(URL("HTTP://H:80/a#frag"))
    assert str(req.absolute_url) == "http://h/a"
    assert str(req.absolute_url) == str(Request("HTTP://H:80/a#frag").absolute_url)


@pytest.mark.parametrize("text", ["ftp://example.com/x", "mailto:a@example.com", "/relative"])
def test_request_from_non_http_yarl_url_is_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        _ = Request(URL(text)).absolute_url


# -- Spider -------------------------------------------------------------------------------------


async def test_spider_start_requests_from_start_urls() -> None:
    spider = MySpider(["http://a/", "http://b/"])
    reqs = [r async for r in spider.start_requests()]
    assert [r.url for r in reqs] == ["http://a/", "http://b/"]
    assert all(r.callback is None for r in reqs)


async def test_base_spider_parse_says_it_is_not_written() -> None:
    assert inspect.isasyncgenfunction(Spider.parse)
    with pytest.raises(NotImplementedError, match="parse"):
        await Spider().parse(None).__anext__()  # type: ignore[arg-type]


def test_spider_settings_exist_on_config() -> None:
    fields = {f.name for f in dataclasses.fields(CrawlConfig)}
    assert set(SPIDER_SETTINGS) <= fields
    for name in SPIDER_SETTINGS:
        assert hasattr(Spider, name), name
        assert getattr(Spider, name) is None, name


# -- CrawlConfig ------------------------------------------------------------------------------


def test_config_defaults_are_valid_and_frozen() -> None:
    cfg = CrawlConfig()
    assert cfg.workers >= 1
    assert cfg.per_host >= 1
    assert cfg.delay >= 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.delay = 3.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay": -0.1},
        {"workers": 0},
        {"workers": -3},
        {"per_host": 0},
        {"timeout": 0},
        {"connect_timeout": -1},
        {"read_timeout": 0},
        {"max_body": 0},
        {"max_redirects": 0},
        {"max_retries": -1},
        {"retry_backoff": -1.0},
        {"max_pages": -1},
        {"max_depth": -1},
        {"user_agent": "   "},
    ],
)
def test_config_out_of_range_values_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        CrawlConfig(**kwargs)
    assert next(iter(kwargs)) in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"delay": float("nan")}, {"timeout": float("nan")}],
    ids=["delay-nan", "timeout-nan"],
)
def test_config_nan_is_refused(kwargs: dict[str, Any]) -> None:
    # NaN passes every `< 0` / `<= 0` check; a NaN delay silently disables politeness
    # (every comparison with the frontier's clock is False).
    with pytest.raises(ConfigError):
        CrawlConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"delay": "1"}, {"workers": 1.5}, {"per_host": "2"}],
    ids=["delay-str", "workers-float", "per_host-str"],
)
def test_config_wrong_types_raise_config_error(kwargs: dict[str, Any]) -> None:
    # A spider's class attribute `delay = "1"` reaches CrawlConfig through layered(); it must
    # be a clear ConfigError, not a TypeError from deep inside (or a crash later).
    with pytest.raises(ConfigError):
        CrawlConfig(**kwargs)


def test_zero_values_allowed_where_meaningful() -> None:
    cfg = CrawlConfig(delay=0, max_retries=0, max_pages=0, max_depth=0)
    assert (cfg.delay, cfg.max_retries, cfg.max_pages, cfg.max_depth) == (0, 0, 0, 0)


class SlowSpider(Spider):
    name = "slow"
    delay = 2.5
    per_host = 1
    max_depth = 3


def test_layered_defaults_when_nothing_set() -> None:
    assert layered(Spider()) == CrawlConfig()


def test_layered_spider_beats_defaults() -> None:
    cfg = layered(SlowSpider())
    assert (cfg.delay, cfg.per_host, cfg.max_depth) == (2.5, 1, 3)
    assert cfg.workers == CrawlConfig().workers


def test_layered_command_line_beats_spider_and_none_means_not_set() -> None:
    cfg = layered(SlowSpider(), {"delay": 0.25, "per_host": None, "workers": 4})
    assert cfg.delay == 0.25
    assert cfg.per_host == 1  # None on the command line leaves the spider's value
    assert cfg.workers == 4
    assert cfg.max_depth == 3


def test_layered_over_a_base() -> None:
    base = CrawlConfig(workers=7, delay=9.0)
    cfg = layered(SlowSpider(), {}, base=base)
    assert cfg.workers == 7
    assert cfg.delay == 2.5


def test_layered_refuses_unknown_settings() -> None:
    with pytest.raises(ConfigError, match="no_such_setting"):
        layered(Spider(), {"no_such_setting": 1})


def test_layered_validates_spider_values() -> None:
    class BadSpider(Spider):
        name = "bad"
        delay = -1.0

    with pytest.raises(ConfigError, match="delay"):
        layered(BadSpider())


def test_config_to_json_round_trips() -> None:
    cfg = CrawlConfig(delay=1.5, resolve={"a.test": "127.0.0.1"})
    data = json.loads(cfg.to_json())
    assert data["delay"] == 1.5
    assert data["resolve"] == {"a.test": "127.0.0.1"}


# -- items -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Book:
    title: str
    price: decimal.Decimal
    seen: datetime.datetime
    day: datetime.date
    ident: uuid.UUID


def test_encode_dict_item() -> None:
    text = encode_item({"a": 1, "é": "ü", "nested": {"l": [1, 2]}})
    assert text == '{"a":1,"é":"ü","nested":{"l":[1,2]}}'


def test_encode_dataclass_item_with_datetime_decimal_uuid() -> None:
    ident = uuid.UUID(int=5)
    item = Book("T", decimal.Decimal("12.50"), datetime.datetime(2024, 5, 6, 7, 8, 9),
                datetime.date(2024, 5, 6), ident)
    assert json.loads(encode_item(item)) == {
        "title": "T",
        "price": "12.50",
        "seen": "2024-05-06T07:08:09",
        "day": "2024-05-06",
        "ident": str(ident),
    }


@pytest.mark.parametrize("value", ["a string", 42, [1, 2], Book], ids=["str", "int", "list", "cls"])
def test_encode_non_item_raises_clear_spider_error(value: object) -> None:
    with pytest.raises(SpiderError) as info:
        encode_item(value)
    message = str(info.value)
    assert "yield dicts" in message
    assert type(value).__name__ in message


@pytest.mark.parametrize("value", [object(), b"raw"], ids=["object", "bytes"])
def test_encode_non_serialisable_value_raises_spider_error(value: object) -> None:
    with pytest.raises(SpiderError, match="JSON"):
        encode_item({"v": value})


def test_encode_item_output_is_strict_json() -> None:
    # NaN/Infinity are not JSON (RFC 8259): stored as-is they break every strict reader of
    # the export (jq, JSON.parse, PostgreSQL jsonb). Refuse them or encode them validly.
    def strict(text: str) -> Any:
        def refuse(name: str) -> Any:
            raise ValueError(f"not JSON: {name}")

        return json.loads(text, parse_constant=refuse)

    for value in (float("nan"), float("inf")):
        try:
            text = encode_item({"price": value})
        except SpiderError:
            continue
        strict(text)


# -- scope --------------------------------------------------------------------------------------


def allows(scope: Scope, url: str) -> bool:
    return scope.allows_url(URL(url))


def test_scope_host_and_subdomains() -> None:
    scope = Scope(["example.com"])
    assert allows(scope, "http://example.com/")
    assert allows(scope, "https://docs.example.com/x")
    assert allows(scope, "http://a.b.example.com/")
    assert not allows(scope, "http://example.org/")
    assert not allows(scope, "http://com/")


def test_scope_is_not_a_suffix_match() -> None:
    scope = Scope(["example.com"])
    assert not allows(scope, "http://evilexample.com/")
    assert not allows(scope, "http://example.com.evil.net/")
    assert not allows(scope, "http://notexample.com/")


def test_scope_strips_www() -> None:
    scope = Scope(["www.example.com"])
    assert allows(scope, "http://example.com/")
    assert allows(scope, "http://www.example.com/")
    assert allows(scope, "http://blog.example.com/")
    # "www.com" is a registrable name itself: nothing to strip (else every .com would do).
    assert allows(Scope(["www.com"]), "http://www.com/")
    assert not allows(Scope(["www.com"]), "http://other.com/")


def test_scope_ignores_case() -> None:
    scope = Scope(["Example.COM."], ports=[8080])
    assert allows(scope, "http://example.com:8080/")
    assert allows(scope, "https://EXAMPLE.com/")


def test_scope_is_the_start_ports_and_the_default_ones() -> None:
    # Another port of an in-scope host is another server: a link, a <base href> or a redirect
    # must not steer the crawl to it.
    scope = Scope.of_urls([URL("http://a.test:8080/x")])
    assert allows(scope, "http://a.test:8080/y")
    assert allows(scope, "http://sub.a.test:8080/y")
    assert allows(scope, "http://a.test/") and allows(scope, "https://a.test/")
    assert allows(scope, "http://a.test:443/") and allows(scope, "https://a.test:80/")
    assert not allows(scope, "http://a.test:9212/")
    assert not allows(scope, "https://a.test:8443/")
    assert not allows(Scope.of_urls([URL("http://a.test/")]), "http://a.test:8080/")
    widened = Scope.of_urls([URL("http://a.test/")], ports=[9000])
    assert allows(widened, "http://a.test:9000/") and not allows(widened, "http://a.test:9001/")
    assert widened.ports == frozenset({80, 443, 9000})


def test_scope_ip_hosts_are_exact() -> None:
    scope = Scope(["127.0.0.1"], ports=[8000])
    assert allows(scope, "http://127.0.0.1:8000/")
    assert not allows(scope, "http://127.0.0.2/")
    # An IP address has no subdomains: a host that merely ends in ".127.0.0.1" is another
    # (invalid or foreign) host, not part of the allowed one.
    assert not allows(scope, "http://sub.127.0.0.1/")
    assert not allows(scope, "http://localhost/")


def test_scope_of_urls() -> None:
    scope = Scope.of_urls([URL("http://www.a.test/x"), URL("https://b.test:81/")])
    assert allows(scope, "http://a.test/") and allows(scope, "http://www.a.test:81/")
    assert allows(scope, "http://b.test:81/") and allows(scope, "http://sub.b.test/")
    assert not allows(scope, "http://c.test/")


def test_empty_scope_allows_nothing() -> None:
    assert not allows(Scope([]), "http://example.com/")


# -- loader ------------------------------------------------------------------------------------

ONE_SPIDER = """
from crawler import Spider

class Only(Spider):
    name = "only"

    async def parse(self, response):
        yield {"url": response.url}
"""

TWO_SPIDERS = """
from crawler import Spider

class First(Spider):
    name = "first"

class Second(Spider):
    name = "second"
"""


@pytest.fixture
def clean_modules() -> Iterator[None]:
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.usefixtures("clean_modules")
def test_load_spider_from_path(tmp_path: Path) -> None:
    path = write(tmp_path / "one_spider_a.py", ONE_SPIDER)
    cls = load_spider_class(str(path))
    assert issubclass(cls, Spider)
    assert cls.__name__ == "Only"
    assert cls.name == "only"


@pytest.mark.usefixtures("clean_modules")
def test_load_spider_from_path_and_class(tmp_path: Path) -> None:
    path = write(tmp_path / "two_spiders_b.py", TWO_SPIDERS)
    assert load_spider_class(f"{path}:Second").name == "second"


@pytest.mark.usefixtures("clean_modules")
def test_load_spider_from_module_and_class(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "loader_mod_c.py", TWO_SPIDERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert load_spider_class("loader_mod_c:First").name == "first"


def test_load_builtin_spider_module() -> None:
    cls = load_spider_class("spiders.site:SiteSpider")
    assert cls.name == "site"


@pytest.mark.usefixtures("clean_modules")
def test_two_spiders_and_no_class_named_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "two_spiders_d.py", TWO_SPIDERS)
    with pytest.raises(SpiderError) as info:
        load_spider_class(str(path))
    message = str(info.value)
    assert "First" in message
    assert "Second" in message
    assert ":ClassName" in message


@pytest.mark.usefixtures("clean_modules")
def test_named_class_that_is_not_a_spider(tmp_path: Path) -> None:
    path = write(tmp_path / "two_spiders_e.py", TWO_SPIDERS + "\nclass Other:\n    pass\n")
    with pytest.raises(SpiderError, match="Other"):
        load_spider_class(f"{path}:Other")
    with pytest.raises(SpiderError, match="Missing"):
        load_spider_class(f"{path}:Missing")


@pytest.mark.usefixtures("clean_modules")
def test_file_without_spider(tmp_path: Path) -> None:
    path = write(tmp_path / "no_spider_f.py", "X = 1\n")
    with pytest.raises(SpiderError, match="0 Spider"):
        load_spider_class(str(path))


@pytest.mark.usefixtures("clean_modules")
@pytest.mark.parametrize(
    "source",
    ["raise RuntimeError('kaboom')\n", "def broken(:\n", "import no_such_module_xyz\n"],
    ids=["raises", "syntax-error", "import-error"],
)
def test_file_that_fails_on_import(tmp_path: Path, source: str) -> None:
    path = write(tmp_path / "boom_g.py", source)
    with pytest.raises(SpiderError) as info:
        load_spider_class(str(path))
    assert str(path) in str(info.value)
    assert "_crawl_spider_boom_g" not in sys.modules


@pytest.mark.usefixtures("clean_modules")
def test_module_that_fails_on_import_gives_spider_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "boom_mod_h.py", "raise RuntimeError('kaboom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(SpiderError) as info:
        load_spider_class("boom_mod_h:Anything")
    assert "boom_mod_h" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.py"
    with pytest.raises(SpiderError) as info:
        load_spider_class(str(path))
    assert str(path) in str(info.value)


def test_missing_module() -> None:
    with pytest.raises(SpiderError, match="no_such_module_xyz"):
        load_spider_class("no_such_module_xyz:Spider")


# -- errors -----------------------------------------------------------------------------------

FETCH_ERRORS = [ConnectError, FetchTimeout, ProtocolError, BadResponse, BodyTooLarge,
                TooManyRedirects]


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= all_subclasses(sub)
    return found


def test_every_fetch_error_has_retryable_and_kind() -> None:
    classes = all_subclasses(FetchError)
    assert set(FETCH_ERRORS) | {HTTPStatusError} <= classes
    kinds = set()
    for cls in classes:
        exc = cls(503) if cls is HTTPStatusError else cls("boom", url="http://h/")
        assert isinstance(exc.retryable, bool), cls
        assert isinstance(exc.kind, str), cls
        assert exc.kind, cls
        kinds.add(exc.kind)
    assert len(kinds) == len(classes)  # each kind names one class


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [(ConnectError, True), (FetchTimeout, True), (ProtocolError, True), (BadResponse, False),
     (BodyTooLarge, False), (TooManyRedirects, False)],
)
def test_fetch_error_retryability(cls: type[FetchError], retryable: bool) -> None:
    assert cls("x").retryable is retryable


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(503, True), (429, True), (500, True), (502, True), (504, True), (408, True),
     (404, False), (403, False), (400, False), (410, False)],
)
def test_http_status_error_retryable(status: int, retryable: bool) -> None:
    exc = HTTPStatusError(status, url="http://h/")
    assert exc.retryable is retryable
    assert exc.status == status
    assert exc.url == "http://h/"
    assert str(status) in str(exc)


def test_describe() -> None:
    assert errors.describe(FetchTimeout("slow")) == "timeout: slow"
    assert errors.describe(KeyError("k")) == "KeyError: 'k'"


def test_every_public_error_derives_from_crawl_error() -> None:
    public_errors = [getattr(crawler, name) for name in crawler.__all__
                     if isinstance(getattr(crawler, name), type)
                     and issubclass(getattr(crawler, name), BaseException)]
    assert CrawlError in public_errors
    for cls in public_errors:
        assert issubclass(cls, CrawlError), cls
    for cls in all_subclasses(CrawlError):
        assert issubclass(cls, CrawlError)
    for cls in (ConfigError, SpiderError, StateFileError, FetchError):
        assert cls in public_errors
    module_errors = [v for v in vars(errors).values()
                     if isinstance(v, type) and issubclass(v, BaseException)
                     and v.__module__ == errors.__name__]
    assert all(issubclass(v, CrawlError) for v in module_errors)


def test_crawler_all_names_exist_and_import() -> None:
    assert len(crawler.__all__) == len(set(crawler.__all__))
    for name in crawler.__all__:
        assert hasattr(crawler, name), name
        exec(f"from crawler import {name}", {})


def test_the_public_api_is_what_a_user_needs_and_no_more() -> None:
    # Spiders, requests and responses; settings; running a crawl and reading how it ended;
    # the errors a user may catch. Counters, loaders and plumbing stay in their modules.
    assert set(crawler.__all__) == {
        "Spider", "Request", "RequestFailure", "Response", "CrawlConfig", "HostPolicy", "Crawler",
        "CrawlResult", "CrawlStatus", "CrawlError", "ConfigError", "SpiderError",
        "StateFileError", "StateWriteError", "FetchError",
        # Running crawls from Python, and the item pipelines' one name.
        "crawl", "crawl_async", "iter_items", "DropItem"}
    for internal in ("Metrics", "Snapshot", "RunState", "Skip", "layered",
                     "load_spider_class", "Sitemap", "ConnectError", "HTTPStatusError"):
        assert not hasattr(crawler, internal), internal
    assert crawler.__doc__ is not None and "internal" in crawler.__doc__


def test_scope_without_subdomains() -> None:
    scope = Scope(["example.org"], subdomains=False)
    assert allows(scope, "http://example.org/")
    assert allows(scope, "http://www.example.org/")
    assert not allows(scope, "http://docs.example.org/")
    assert allows(Scope(["example.org"]), "http://docs.example.org/")
