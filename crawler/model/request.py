"""What a spider yields to ask for a page."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from yarl import URL

from crawler.errors import SpiderError
from crawler.model import specs
from crawler.model.callshape import shape_of
from crawler.model.callsite import located
from crawler.model.items import not_unicode
from crawler.model.specs import Pairs, RequestExtra
from crawler.urls.canon import (
    MAX_URL_LENGTH,
    CanonicalURL,
    canonical,
    has_credentials,
    parse_absolute,
    parsed,
)

Callback = Callable[..., Any]


class Request:
    """A page to fetch, and the spider method (by name) that will parse it.

    The callback must be a method of the running spider (an `async def` or `def` generator,
    or a function returning a list or None); it is stored by name so a resumed crawl can
    call it. `cb_kwargs` must be JSON-serialisable: they are stored as JSON, never pickled.

    A GET by default. `method`, `headers`, `body` (bytes or text), `json=` (sent as JSON),
    `data=` (form-encoded; json= and data= make it a POST unless a method is given),
    `cookies=` (sent with this request), `proxy=` (an http(s) proxy URL for this request),
    `errback=` (a generator method of the spider called with a `RequestFailure` when the
    request fails for good), `handle_statuses=` (4xx/5xx statuses the callback sees) and
    `dont_filter=True` (never deduplicated) are all kept in the state file with it.
    Headers and body together take at most 1 MiB.
    """

    __slots__ = ("_key", "_text", "_url", "callback", "cb_kwargs_json", "credentials",
                 "extra", "priority")

    def __init__(self, url: str | URL, callback: Callback | None = None, *,
                 cb_kwargs: Mapping[str, Any] | None = None, priority: int = 0,
                 method: str | None = None, headers: Pairs | None = None,
                 body: bytes | str | None = None, json: Any = None, data: Pairs | None = None,
                 cookies: Pairs | None = None, proxy: str | None = None,
                 errback: Callback | None = None, handle_statuses: Iterable[int] | None = None,
                 dont_filter: bool = False) -> None:
        self._url: URL | None = None
        try:  # free unless raised: then the error names the spider's line (callsite)
            if isinstance(url, URL):
                canon = canonical(url)
                self._text = str(url) if canon is None else canon
                self._key = None if canon is None or len(canon) > MAX_URL_LENGTH else canon
                self.credentials = url.raw_user is not None or url.raw_password is not None
            elif isinstance(url, str):
                self._text = url
                self._key = _key(url)
                self.credentials = has_credentials(url)
            else:
                raise SpiderError(f"a request's URL must be text (or a yarl URL), not "
                                  f"{type(url).__name__} {url!r:.80}")
            self.callback = callback_name(callback)
            self.cb_kwargs_json = encode_kwargs(cb_kwargs, self._text)
            self.priority = check_priority(priority)
            self.extra: RequestExtra | None = None if (
                method is None and headers is None and body is None and json is None
                and data is None and cookies is None and proxy is None and errback is None
                and handle_statuses is None and not dont_filter
            ) else specs.build(self._text, method=method, headers=headers, body=body,
                               json_value=json, data=data, cookies=cookies, proxy=proxy,
                               errback=errback, handle_statuses=handle_statuses,
                               dont_filter=dont_filter)
        except SpiderError as exc:
            raise located(exc) from None

    @classmethod
    def prepared(cls, url: str, callback: str | None, cb_kwargs_json: str | None,
                 priority: int, *, key: CanonicalURL | None,
                 credentials: bool = False, extra: RequestExtra | None = None) -> Request:
        """A request from parts already checked: the URL's canonical text as `key` (None for
        a raw href that cannot be crawled), a callback name and JSON arguments, and whether
        the URL as written held credentials (dropped from the key). For many links at once."""
        req = cls.__new__(cls)
        req.credentials = credentials
        req._url = None
        req._key = key
        req._text = url if key is None else key
        req.callback = callback
        req.cb_kwargs_json = cb_kwargs_json
        req.priority = priority
        req.extra = extra
        return req

    credentials: bool
    """The URL as written named a user or password. They are never sent nor stored: the
    canonical URL (`key`) has none, and the crawl counts such links (`stripped_credentials`)."""

    @property
    def url(self) -> str:
        """The URL as given (canonical when it came from a link or a yarl URL)."""
        return self._text

    @property
    def key(self) -> CanonicalURL | None:
        """The canonical URL's text, what the crawl deduplicates and stores; None if `url` is
        not an absolute http(s) URL (the crawler counts such a request as skipped). Read-only,
        like `url`: the two always agree."""
        return self._key

    @property
    def absolute_url(self) -> URL:
        """The canonical URL. Raises ValueError if `url` is not an absolute http(s) URL."""
        if self._url is None:
            if self._key is None:
                parse_absolute(self._text)  # raises the error that says what is wrong
                raise ValueError(f"not a crawlable URL: {self._text!r}")
            self._url = parsed(self._key)
        return self._url

    @property
    def method(self) -> str:
        return "GET" if self.extra is None or self.extra.method is None else self.extra.method

    @property
    def headers(self) -> dict[str, str]:
        """The headers this request adds to the crawl's own."""
        return {} if self.extra is None else dict(specs.decode(self.extra.spec).headers)

    @property
    def body(self) -> bytes:
        return (self.extra.body if self.extra is not None else None) or b""

    def __repr__(self) -> str:
        # Never the proxy: its URL may hold credentials.
        verb = "" if self.extra is None or self.extra.method is None else f"{self.method} "
        return f"Request({verb}{self.url!r}, callback={self.callback or 'parse'})"


def _key(text: str) -> CanonicalURL | None:
    try:
        return parse_absolute(text)
    except ValueError:
        return None


def callback_name(callback: Callback | None) -> str | None:
    """Check a callback can be stored by name and called back later; return that name."""
    if callback is None:
        return None
    owner = getattr(callback, "__self__", None)
    name = getattr(callback, "__name__", None)
    if owner is None or name is None or getattr(owner, name, None) != callback \
            or not inspect.ismethod(callback):  # a builtin's owner is its module
        raise SpiderError(
            f"callback {callback!r} must be a method of the spider (e.g. self.parse_item), "
            "so that it can be stored by name and called when the crawl resumes"
        )
    if not inspect.isasyncgenfunction(callback):  # the usual shape, checked at no cost
        shape_of(callback)  # raises the SpiderError that names it
    return None if name == "parse" else name


def check_priority(priority: object) -> int:
    """A priority the state file can hold (a signed 64-bit integer), or SpiderError: the
    request fails where it is made, not in the store, after its links were counted."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise SpiderError(f"priority must be a whole number, not {priority!r}")
    if not -(2**63) <= priority < 2**63:
        raise SpiderError(f"priority {priority} is outside the range a state file holds "
                          "(a signed 64-bit integer)")
    return priority


def encode_kwargs(cb_kwargs: Mapping[str, Any] | None, url: str) -> str | None:
    if not cb_kwargs:
        return None
    data = dict(cb_kwargs)
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SpiderError(
            f"cb_kwargs of the request to {url} must be JSON-serialisable "
            f"(they are stored in the state file): {exc}"
        ) from None
    problem = not_unicode(text, data)
    if problem:
        raise SpiderError(f"cb_kwargs of the request to {ascii(url)[1:-1]} cannot be stored "
                          f"in the state file: {problem}")
    return text
