"""What the engine needs of HTTP: the `Transport` protocol and what a fetch gives back.

The engine receives a transport (as httpx's client takes `transport=`): the real one is
`crawler.http.fetcher.Fetcher`, over aiohttp; tests of the engine's decisions give one that
answers from a dict, without sockets. Nothing here imports aiohttp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from multidict import CIMultiDictProxy
from yarl import URL

from crawler.observe.metrics import PoolStats

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: URL
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def location(self) -> str | None:
        """The redirect target as sent, if this is a redirect."""
        if self.status in REDIRECT_STATUSES:
            return self.headers.get("Location")
        return None


@dataclass(frozen=True, slots=True)
class Cookie:
    """One cookie of the crawl's jar, as plain data (what a Set-Cookie header said, with the
    jar's own reading of it): the engine keeps it in the state file, so a resumed crawl is
    still logged in."""

    name: str
    value: str
    domain: str
    path: str
    expires: float | None  # wall-clock seconds; None: a session cookie (kept for the crawl)
    secure: bool = False
    http_only: bool = False
    host_only: bool = True  # sent to `domain` only, not its subdomains (no Domain attribute)


@dataclass(frozen=True, slots=True)
class Sending:
    """What a request sends besides a plain GET of its URL (None for a plain GET)."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    cookies: tuple[tuple[str, str], ...] = ()
    proxy: str | None = None  # may hold credentials: never logged


WantBody = Callable[[int, CIMultiDictProxy[str]], bool]
"""Given a response's status and headers: whether its body is wanted (else not read)."""

OnSent = Callable[[], None]
"""Called when the request is written to its connection (before any answer): the host's
politeness clock starts then, not when the request was decided."""


class Transport(Protocol):
    """One request at a time (a GET unless `send` says otherwise), one hop (redirects are
    the engine's), open for the whole run.

    `fetch` raises `crawler.errors.FetchError` subclasses, each saying whether a retry may
    help, and never anything else for a failed fetch. It calls `on_sent` (if given) at the
    moment the request goes out, not at all if it fails before."""

    allow_private: bool
    """Whether connections to private addresses are allowed (see crawler.urls.addresses)."""

    def auth_for(self, starts: Iterable[URL]) -> None:
        """Told the crawl's start URLs before it opens: the config's `auth` for a bare host
        goes on the schemes and ports these reach (a transport sending none ignores it)."""
        ...

    async def fetch(self, url: URL, want_body: WantBody | None = None, *,
                    keep_alive: bool = True, send: Sending | None = None,
                    on_sent: OnSent | None = None) -> FetchResult: ...

    @property
    def cookie_changes(self) -> int:
        """How many responses have set cookies so far: when it moves, `cookies()` changed."""
        ...

    def cookies(self) -> tuple[Cookie, ...]:
        """The crawl's cookie jar now (empty when cookies are off)."""
        ...

    def changed_cookies(self) -> tuple[list[Cookie], list[tuple[str, str, str]]]:
        """The cookies set since the last call, and the (domain, path without its trailing
        slashes, name) of those gone: what a response changed, not the whole jar."""
        ...

    def load_cookies(self, cookies: Iterable[Cookie]) -> None:
        """Fill the jar with cookies kept from an earlier run (expired ones are dropped)."""
        ...

    async def private_kind(self, host: str) -> str | None:
        """The kind of private address `host` resolves to ("loopback", ...), or None."""
        ...

    def pool(self, *, count_process_sockets: bool = True) -> PoolStats:
        """The connection pool now, as the live display shows it."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None: ...
