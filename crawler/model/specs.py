"""What a request sends besides its URL: method, headers, body, cookies, proxy, and what the
engine does with its answer (errback, handle_statuses). Checked where the spider makes the
request, and kept in the state file as plain data (one JSON text, the body as bytes), so a
resumed crawl sends exactly the same request.

A plain GET has none of this (`Request.extra` is None): the crawl's fast path is untouched."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict
from urllib.parse import urlencode

from yarl import URL

from crawler.config import check_header_value, redact_url
from crawler.errors import ConfigError, FailureKind, SpiderError
from crawler.model.items import not_unicode

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_REQUEST_BYTES = 1024 * 1024
"""What one request's headers and body may take in the state file, together."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110's token: a header's name
_COOKIE_VALUE = re.compile(r"[^\x00-\x1f\x7f;,\\\"\s]*")
# Status codes whose redirect turns a POST (and the like) into a GET without a body, as
# browsers and aiohttp do; 307 and 308 keep the method and the body.
_TO_GET = frozenset({301, 302, 303})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})
_SECRETS = frozenset({"authorization", "proxy-authorization", "cookie"})
# The crawler's own: what they say follows from the URL and the body.
_REFUSED_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})

Pairs = Mapping[str, str] | Iterable[tuple[str, str]]


class RequestExtra(NamedTuple):
    """What a request adds to a plain GET, as the store keeps it: the last four fields of
    `storage.NewRequest`, in their order (`NewRequest(..., *extra)`)."""

    method: str | None  # None: GET
    spec: str | None  # JSON text of a `Spec`, None when it would be empty
    body: bytes | None
    unique: bool  # dont_filter: never deduplicated


@dataclass(frozen=True, slots=True)
class Spec:
    """A stored request's headers, cookies, proxy, errback, statuses and dont_filter, read
    back (dont_filter is in the row's key too, but a redirect's hop needs to know it)."""

    headers: tuple[tuple[str, str], ...] = ()
    cookies: tuple[tuple[str, str], ...] = ()
    proxy: str | None = None
    errback: str | None = None
    handle_statuses: frozenset[int] = frozenset()
    dont_filter: bool = False

    def encode(self) -> str | None:
        data: dict[str, Any] = {}
        if self.headers:
            data["headers"] = [list(pair) for pair in self.headers]
        if self.cookies:
            data["cookies"] = [list(pair) for pair in self.cookies]
        if self.proxy:
            data["proxy"] = self.proxy
        if self.errback:
            data["errback"] = self.errback
        if self.handle_statuses:
            data["handle_statuses"] = sorted(self.handle_statuses)
        if self.dont_filter:
            data["dont_filter"] = True
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False) if data else None


NO_SPEC = Spec()


def decode(text: str | None) -> Spec:
    """A stored spec read back (the empty one for None)."""
    if text is None:
        return NO_SPEC
    data = json.loads(text)
    return Spec(tuple((k, v) for k, v in data.get("headers", ())),
                tuple((k, v) for k, v in data.get("cookies", ())), data.get("proxy"),
                data.get("errback"), frozenset(data.get("handle_statuses", ())),
                bool(data.get("dont_filter")))


@dataclass(frozen=True, slots=True)
class RequestFailure:
    """What an errback receives: the request that failed for good (after its retries), the
    kind of failure (`timeout`, `connect`, `http_status`, ...), its message, and the HTTP
    status when there was one."""

    url: str
    kind: FailureKind
    message: str
    status: int | None = None


class RequestOptions(TypedDict, total=False):
    """The keywords `Request` takes besides its URL, callback, cb_kwargs and priority (for
    `Response.follow` and `follow_all`)."""

    method: str | None
    headers: Pairs | None
    body: bytes | str | None
    json: Any
    data: Pairs | None
    cookies: Pairs | None
    proxy: str | None
    errback: Callable[..., Any] | None
    handle_statuses: Iterable[int] | None
    dont_filter: bool


def from_options(url: str, options: RequestOptions) -> RequestExtra | None:
    if not options:
        return None
    unknown = set(options) - set(RequestOptions.__annotations__)
    if unknown:
        raise SpiderError(f"unknown request option {sorted(unknown)[0]!r}")
    return build(url, method=options.get("method"), headers=options.get("headers"),
                 body=options.get("body"), json_value=options.get("json"),
                 data=options.get("data"), cookies=options.get("cookies"),
                 proxy=options.get("proxy"), errback=options.get("errback"),
                 handle_statuses=options.get("handle_statuses"),
                 dont_filter=bool(options.get("dont_filter")))


def build(url: str, *, method: str | None, headers: Pairs | None, body: bytes | str | None,
          json_value: Any, data: Pairs | None, cookies: Pairs | None, proxy: str | None,
          errback: Callable[..., Any] | None, handle_statuses: Iterable[int] | None,
          dont_filter: bool) -> RequestExtra | None:
    """The checked extras of a request to `url`, or None for a plain GET (SpiderError)."""
    pairs = _headers(headers)
    payload, content_type = _body(url, body, json_value, data)
    if content_type and not any(name.lower() == "content-type" for name, _ in pairs):
        pairs += (("Content-Type", content_type),)
    verb = _method(method, json_value is not None or data is not None)
    if payload is not None and verb in {"GET", "HEAD"}:
        raise SpiderError(f"a {verb} request to {url} cannot have a body; "
                          "use method='POST' (or PUT, PATCH)")
    spec = Spec(pairs, _cookies(cookies), _proxy(proxy), errback_name(errback),
                check_statuses(handle_statuses or ()), bool(dont_filter)).encode()
    # Bytes, as the state file keeps them: a header of 2-byte characters takes twice its length.
    size = len(spec.encode("utf-8") if spec else b"") + len(payload or b"")
    if size > MAX_REQUEST_BYTES:
        raise SpiderError(f"the request to {url} takes {size} bytes of headers and body; "
                          f"a request may take at most {MAX_REQUEST_BYTES} in the state file")
    if verb == "GET" and spec is None and payload is None and not dont_filter:
        return None
    return RequestExtra(None if verb == "GET" else verb, spec, payload, bool(dont_filter))


def redirected(extra: RequestExtra, status: int, source: URL,
               target: URL | None) -> RequestExtra | None:
    """The extras of the request a redirect with `status` makes (the Fetch standard): 301
    and 302 turn a POST into a GET without a body, 303 any method but GET and HEAD; other
    methods moved by a 301 or 302, and everything moved by a 307 or 308, keep all.
    To another origin (scheme, host or port) the request's own credentials stay behind:
    its Authorization, Proxy-Authorization and Cookie headers and its cookies=, as browsers
    do (the crawl's jar still sends that origin's own cookies). A dont_filter request's hop
    is not deduplicated either (as Scrapy's): a login POST that redirects to a page already
    seen still reaches its callback; `max_redirects` ends a loop."""
    to_get = (status == 303 and extra.method not in {None, "HEAD"}) or (
        status in _TO_GET and extra.method == "POST")
    moved = target is None or _origin(source) != _origin(target)
    spec = decode(extra.spec)
    unique = spec.dont_filter
    if not to_get and not moved:
        return extra._replace(unique=unique)
    dropped = (_BODY_HEADERS if to_get else frozenset()) | (_SECRETS if moved else frozenset())
    kept = tuple(p for p in spec.headers if p[0].lower() not in dropped)
    cookies = () if moved else spec.cookies
    text = Spec(kept, cookies, spec.proxy, spec.errback, spec.handle_statuses,
                spec.dont_filter).encode()
    if not to_get:
        return extra._replace(spec=text, unique=unique)
    return None if text is None else RequestExtra(None, text, None, unique)


def _origin(url: URL) -> tuple[str, str, int | None]:
    return url.scheme, (url.raw_host or "").lower(), url.port


def _method(method: str | None, has_form: bool) -> str:
    if method is None:
        return "POST" if has_form else "GET"
    verb = method.upper() if isinstance(method, str) else method
    if verb not in METHODS:
        raise SpiderError(f"unknown HTTP method {method!r}; use one of "
                          f"{', '.join(sorted(METHODS))}")
    return str(verb)


def _pairs(what: str, value: Pairs) -> list[tuple[str, str]]:
    items = value.items() if isinstance(value, Mapping) else value
    pairs = []
    for pair in items:
        if not (isinstance(pair, tuple | list) and len(pair) == 2
                and all(isinstance(part, str) for part in pair)):
            raise SpiderError(f"{what} must map text to text (a dict, or a list of "
                              f"(name, value) pairs), not {pair!r:.80}")
        pairs.append((pair[0], pair[1]))
    return pairs


def _headers(headers: Pairs | None) -> tuple[tuple[str, str], ...]:
    if not headers:
        return ()
    pairs = _pairs("headers", headers)
    for name, value in pairs:
        if not _TOKEN.fullmatch(name):
            raise SpiderError(f"{name!r} is not a valid header name")
        if name.lower() in _REFUSED_HEADERS:
            raise SpiderError(f"the {name} header cannot be set in a request's headers "
                              "(it is the crawler's)")
        try:
            check_header_value(name, value, setting="headers")
        except ConfigError as exc:
            raise SpiderError(str(exc)) from None
    return tuple(pairs)


def _body(url: str, body: bytes | str | None, json_value: Any,
          data: Pairs | None) -> tuple[bytes | None, str | None]:
    """The body to send and the Content-Type it implies (json= and data= only)."""
    given = [name for name, v in (("body", body), ("json", json_value), ("data", data))
             if v is not None]
    if len(given) > 1:
        raise SpiderError(f"the request to {url} has {' and '.join(given)}: give one")
    if body is not None:
        if isinstance(body, str):
            return body.encode("utf-8"), None
        if not isinstance(body, bytes | bytearray):
            raise SpiderError(f"body must be bytes or text, not {type(body).__name__}")
        return bytes(body), None
    if json_value is not None:
        try:
            text = json.dumps(json_value, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SpiderError(f"json= of the request to {url} cannot be sent as JSON: "
                              f"{exc}") from None
        problem = not_unicode(text, json_value)
        if problem:
            raise SpiderError(f"json= of the request to {url} cannot be sent: {problem}")
        return text.encode("utf-8"), "application/json"
    if data is not None:
        return (urlencode(_pairs("data", data)).encode("ascii"),
                "application/x-www-form-urlencoded")
    return None, None


def _cookies(cookies: Pairs | None) -> tuple[tuple[str, str], ...]:
    if not cookies:
        return ()
    pairs = _pairs("cookies", cookies)
    for name, value in pairs:
        if not _TOKEN.fullmatch(name) or not _COOKIE_VALUE.fullmatch(value):
            raise SpiderError(f"cookie {name!r}={value!r} cannot be sent: a cookie's name "
                              "is a token, its value has no spaces, quotes, ';' or ','")
    return tuple(pairs)


def _proxy(proxy: str | None) -> str | None:
    """A request's proxy, checked whole as the crawl-wide one is: a malformed one would fail
    at fetch time with a message that holds its password."""
    if proxy is None:
        return None
    if not isinstance(proxy, str):
        raise SpiderError("proxy must be an http:// or https:// URL")
    try:
        url = URL(proxy)
        port = url.port
    except ValueError:
        url, port = URL(), None
    if url.scheme not in ("http", "https") or not url.raw_host or port is None \
            or url.path not in ("", "/") or url.query_string or url.fragment:
        # Never the URL itself in the message: it may hold credentials.
        raise SpiderError("proxy must be http://[USER:PASSWORD@]HOST[:PORT] (or https://), "
                          f"not {redact_url(proxy)!r}")
    return proxy


def errback_name(errback: Callable[..., Any] | None) -> str | None:
    """An errback is a generator method of the spider (async or not), kept by name."""
    if errback is None:
        return None
    owner = getattr(errback, "__self__", None)
    name = getattr(errback, "__name__", None)
    if owner is None or name is None or getattr(owner, name, None) != errback:
        raise SpiderError(f"errback {errback!r} must be a method of the spider (e.g. "
                          "self.on_error), so that it can be stored by name")
    if not (inspect.isasyncgenfunction(errback) or inspect.isgeneratorfunction(errback)):
        raise SpiderError(f"errback {name!r} must be a generator: 'async def {name}(self, "
                          "failure):' (or 'def') that yields items and requests")
    return str(name)


def check_statuses(statuses: Iterable[int]) -> frozenset[int]:
    """HTTP statuses a callback asks to see (`handle_statuses`), checked."""
    if isinstance(statuses, str | bytes) or not isinstance(statuses, Iterable):
        raise SpiderError(f"handle_statuses must be a list of HTTP statuses, not {statuses!r}")
    found = frozenset(statuses)
    for status in found:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status < 600:
            raise SpiderError(f"handle_statuses: {status!r} is not an HTTP status (100-599)")
    return found
