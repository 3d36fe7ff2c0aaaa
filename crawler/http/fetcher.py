"""HTTP for the whole crawl: ONE ClientSession on ONE TCPConnector. The only aiohttp user.

It fetches exactly one hop (redirects are the engine's, so each hop is checked for scope and
dedup), streams the body under a size cap (which also bounds decompression bombs), and turns
aiohttp's errors into the crawler's own, each saying whether a retry may help.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping
from types import TracebackType

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver
from aiohttp.http_exceptions import ContentEncodingError, LineTooLong
from aiohttp.resolver import AsyncResolver
from yarl import URL

from crawler.config import REDACTED, CrawlConfig
from crawler.errors import (
    BadResponse,
    BodyTooLarge,
    ConnectError,
    FetchError,
    FetchTimeout,
    PrivateAddress,
    ProtocolError,
    TLSError,
)
from crawler.http import session as sessions
from crawler.http.pool import PoolCounters, RequestTrace, live_counts, process_sockets, tracing
from crawler.http.resolver import StaticResolver
from crawler.http.transport import (
    REDIRECT_STATUSES,
    Cookie,
    FetchResult,
    OnSent,
    Sending,
    WantBody,
)
from crawler.observe.metrics import PoolStats
from crawler.urls.addresses import private_kind

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Small leftovers are read so the connection goes back to the pool; big ones are cut off.
_DRAIN_LIMIT = 64 * 1024
_CLOSE = {"Connection": "close"}


class _Refused(OSError):
    """Raised where a socket would be made for a private address. One message for all, so
    that aiohappyeyeballs, which merges the errors of several addresses unless their texts
    agree, hands this very exception on."""

    def __init__(self, address: str, kind: str) -> None:
        super().__init__("private address refused")
        self.address = address
        self.kind = kind


class Fetcher:
    """Use as `async with Fetcher(config) as fetcher: await fetcher.fetch(url)`."""

    def __init__(self, config: CrawlConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._resolver: AbstractResolver | None = None
        self._counters = PoolCounters()
        self.allow_private = config.allow_private
        """Whether sockets may be opened to private addresses (see crawler.urls.addresses)."""
        self._jar: aiohttp.abc.AbstractCookieJar | None = None  # made on a running loop
        self._auth: dict[sessions.Origin, str] = {}  # see `auth_for`
        self._proxy, self._proxy_headers = sessions.proxy_for(config)
        # The proxies the user named (crawl-wide, per request), by (address, port): the
        # sockets the private-address guard lets through, and the proxy URLs resolved so far.
        self._proxy_sockets: set[tuple[str, int]] = set()
        self._proxies_resolved: set[str] = set()
        self._credentials = bool(self._auth) or self._proxy_headers is not None
        # The crawl's own headers, sent with each request (see `sessions.default_headers`).
        self._headers: dict[str, str] = dict(config.headers)

    def auth_for(self, starts: Iterable[URL]) -> None:
        """Send the crawl's basic auth where these start URLs reach its hosts, only there."""
        self._auth = sessions.auth_by_origin(self._config, starts)
        self._credentials = bool(self._auth) or self._proxy_headers is not None

    @property
    def cookie_changes(self) -> int:
        return self._jar.changes if isinstance(self._jar, sessions.CountingJar) else 0

    def cookies(self) -> tuple[Cookie, ...]:
        return () if self._jar is None else sessions.cookies_of(self._jar)

    def changed_cookies(self) -> tuple[list[Cookie], list[tuple[str, str, str]]]:
        if isinstance(self._jar, sessions.CountingJar):
            return self._jar.take_changed()
        return [], []

    def load_cookies(self, cookies: Iterable[Cookie]) -> None:
        if self._jar is None:
            raise RuntimeError("Fetcher is not open")
        sessions.load_into(self._jar, cookies)

    async def private_kind(self, host: str) -> str | None:
        """The kind of private address `host` resolves to ("loopback", ...), or None if it
        resolves to public addresses only, or not at all (a start URL's host: is the crawl
        one of private sites?)."""
        if self._resolver is None:
            raise RuntimeError("Fetcher is not open")
        host = host.strip("[]")
        kind = private_kind(host)
        if kind != "not an IP address":
            return kind
        try:
            answers = await self._resolver.resolve(host, 0, socket.AF_UNSPEC)
        except (OSError, ValueError):
            return None
        kinds = (private_kind(answer["host"]) for answer in answers)
        return next((kind for kind in kinds if kind is not None), None)

    def _socket(self, addr_info: AddrInfoType) -> socket.socket:
        """Every connection's socket, made once its address is final: the one place that
        knows the address actually connected to, whatever DNS said before."""
        family, type_, proto, _, address = addr_info
        if not self.allow_private and address[:2] not in self._proxy_sockets:
            kind = private_kind(str(address[0]))
            if kind is not None:
                raise _Refused(str(address[0]), kind)
        return socket.socket(family=family, type=type_, proto=proto)

    def pool(self, *, count_process_sockets: bool = True) -> PoolStats:
        """The connection pool now. Counting the process's sockets costs a system call per
        open file: fine a few times a second (the live display), not once a request."""
        c = self._counters
        in_use = idle = waiting = None
        connector = None if self._session is None else self._session.connector
        if connector is not None:
            in_use, idle, waiting = live_counts(connector)
        return PoolStats(in_use, idle, waiting, c.created, c.reused, c.dns_hits, c.dns_misses,
                         c.dns_seconds, process_sockets() if count_process_sockets else None)

    async def __aenter__(self) -> Fetcher:
        cfg = self._config
        # The connector does not own a resolver it is given: we close it ourselves.
        resolver = self._resolver = (
            StaticResolver(cfg.resolve) if cfg.resolve else AsyncResolver()
        )
        connector = aiohttp.TCPConnector(
            # The scheduler bounds concurrency at `workers`, so nothing waits for a pool slot
            # (time waiting would count against the request's timeout, aiohttp #10313).
            limit=cfg.workers,
            # A safety net; the frontier enforces the per-host caps, overrides included.
            limit_per_host=max([cfg.per_host, *(p.per_host for p in cfg.host_policies.values()
                                                if p.per_host)]),
            resolver=resolver,
            use_dns_cache=cfg.dns_ttl > 0,  # aiohttp reads a TTL of None as "forever"
            ttl_dns_cache=max(1, round(cfg.dns_ttl)),
            keepalive_timeout=cfg.keepalive_timeout,
            socket_factory=self._socket,
        )
        if self._proxy is not None and not cfg.allow_private:
            await self._allow_proxy(str(self._proxy))
        self._jar = sessions.jar_for(cfg)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=cfg.timeout, connect=cfg.connect_timeout,
                                          sock_read=cfg.read_timeout),
            headers=sessions.default_headers(cfg, ACCEPT),
            # The crawl's session; the engine keeps it in the state file (cookies=False: none).
            cookie_jar=self._jar,
            raise_for_status=False,
            auto_decompress=True,
            trace_configs=[tracing(self._counters)],
        )
        return self

    async def _allow_proxy(self, proxy: str) -> None:
        """A proxy the user named is theirs, loopback or not: its sockets are let through,
        on its port only (another port of that address is another server, still refused).
        Resolved once per proxy."""
        if proxy in self._proxies_resolved:
            return
        self._proxies_resolved.add(proxy)
        url = URL(proxy)
        port = url.port or 80
        self._proxy_sockets.update((address, port)
                                   for address in await self._addresses(url.host or ""))

    async def _addresses(self, host: str) -> frozenset[str]:
        """The addresses `host` resolves to (itself if it is an IP address)."""
        if private_kind(host) != "not an IP address" or self._resolver is None:
            return frozenset({host.strip("[]")})
        try:
            answers = await self._resolver.resolve(host, 0, socket.AF_UNSPEC)
        except (OSError, ValueError):
            return frozenset()
        return frozenset(answer["host"] for answer in answers)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def fetch(self, url: URL, want_body: WantBody | None = None, *,
                    keep_alive: bool = True, send: Sending | None = None,
                    on_sent: OnSent | None = None) -> FetchResult:
        """One GET (or what `send` says), no redirects followed. `want_body(status, headers)`
        may decline the body.

        `keep_alive=False` asks the server to close the connection after this response: an
        idle keep-alive socket is not counted by aiohttp's `limit`, so a crawl of thousands
        of hosts would otherwise hold one open per host until `keepalive_timeout`.
        `on_sent()` is called as the request is written (aiohttp's headers-sent signal).
        """
        if self._session is None:
            raise RuntimeError("Fetcher is not open")
        if url.raw_user is not None or url.raw_password is not None:
            url = url.with_user(None)  # never sent, whatever a state file holds
        if not self.allow_private and (self._proxy is not None
                                       or (send is not None and send.proxy is not None)):
            await self._through_proxy(url, send)
        trace = RequestTrace(on_sent=on_sent)
        try:
            return await self._get(self._session, url, want_body, keep_alive, trace, send=send)
        except FetchError:
            raise
        except aiohttp.ClientResponseError as exc:
            raise _unparsable(exc, url, trace) from exc
        except aiohttp.ClientSSLError as exc:  # before ClientConnectorError, its base
            raise TLSError(f"TLS failed with {url.host}: {exc}", url=str(url)) from exc
        except aiohttp.ClientConnectorDNSError as exc:
            raise ConnectError(f"DNS lookup failed for {url.host}: {exc.os_error}",
                               url=str(url)) from exc
        except aiohttp.ClientProxyConnectionError as exc:
            raise ConnectError(f"cannot connect to the proxy {exc.host}:{exc.port}: "
                               f"{exc.os_error}", url=str(url)) from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _Refused):
                refused = exc.os_error
                raise PrivateAddress(
                    f"refused to connect to {refused.address}, a {refused.kind} address, for "
                    f"{url.host}: the crawl's start URLs are public (--allow-private allows "
                    "private networks)", url=str(url)) from exc
            raise ConnectError(f"cannot connect to {url.host}:{url.port}: {exc.os_error}",
                               url=str(url)) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise FetchTimeout(f"no answer in time ({_timeouts(self._config)})",
                               url=str(url)) from exc
        except aiohttp.ClientPayloadError as exc:
            if isinstance(exc.__cause__, ContentEncodingError):  # the same bytes every time
                raise BadResponse(f"body cannot be decoded: {exc.__cause__.message}",
                                  url=str(url)) from exc
            raise ProtocolError(f"connection broke mid-body: {exc}", url=str(url)) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise ProtocolError(f"connection broke: {exc}", url=str(url)) from exc
        except aiohttp.InvalidURL as exc:  # a proxy's URL too: its password never shown
            raise BadResponse(f"invalid URL: {_redacted(str(exc))}", url=str(url)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ProtocolError(f"{type(exc).__name__}: {_redacted(str(exc))}",
                                url=str(url)) from exc

    async def _through_proxy(self, url: URL, send: Sending | None) -> None:
        """A request through a proxy, crawl-wide or its own: the proxy connects to the target,
        out of our socket guard's sight, so a private target is refused here; the request's
        own proxy is let through the guard (the user named it)."""
        sessions.refuse_private_target(url)
        if send is not None and send.proxy is not None:
            await self._allow_proxy(send.proxy)

    async def _get(self, session: aiohttp.ClientSession, url: URL, want_body: WantBody | None,
                   keep_alive: bool, trace: RequestTrace, *,
                   send: Sending | None) -> FetchResult:
        cap = self._config.max_body
        extra: Mapping[str, str] | None = None if keep_alive else _CLOSE
        # A request's own proxy replaces the crawl's, and the crawl's proxy credentials with it.
        proxy_headers = self._proxy_headers if send is None or send.proxy is None else None
        if self._headers:  # a crawl without headers of its own pays nothing
            extra = {**self._headers, **extra} if extra else self._headers
        if self._credentials:  # basic auth or a proxy's: a crawl that has none pays nothing
            extra = sessions.request_headers(extra, url, self._auth, proxy_headers)
        if send is None:  # a plain GET: the crawl's fast path
            request = session.get(url, allow_redirects=False, headers=extra,
                                  proxy=self._proxy, proxy_headers=proxy_headers,
                                  trace_request_ctx=trace)
        else:
            if send.cookies and isinstance(self._jar, sessions.CountingJar):
                self._jar.add_sent(send.cookies, url)  # and still sent below: an IP host's
            sent = sessions.merged(send.headers, extra)
            request = session.request(
                send.method, url, allow_redirects=False, headers=sent, data=send.body,
                cookies=send.cookies or None, proxy=send.proxy or self._proxy,
                proxy_headers=proxy_headers, trace_request_ctx=trace)
        async with request as resp:
            headers = resp.headers
            if resp.status in REDIRECT_STATUSES or (
                want_body is not None and not want_body(resp.status, headers)
            ):
                await _discard(resp)
                return FetchResult(url, resp.status, headers, b"")
            declared = resp.content_length
            if declared is not None and declared > cap:
                resp.close()
                raise BodyTooLarge(f"body of {declared} bytes is over the {cap}-byte cap",
                                   url=str(url))
            body = await _read_capped(resp, cap, url)
            return FetchResult(url, resp.status, headers, body)


# Parse errors that are this response's own, whatever connection it came on: its headers or
# its body's encoding (aiohttp's C parser reports them in these words only).
_OWN_FAULTS = ("Too many headers", "Can not decode content-encoding")


def _unparsable(exc: aiohttp.ClientResponseError, url: URL, trace: RequestTrace) -> FetchError:
    """A response aiohttp could not parse (it reports it as a client-made "400", which is not
    the server's status). On a fresh connection it is the server's answer, the same every
    time (too many headers, an encoding it can't undo): final. On a reused keep-alive
    connection, bytes a previous response left behind may be to blame, and a fresh
    connection may well succeed."""
    if _oversized(exc.__cause__):
        return BadResponse(f"response headers too large: {exc.message}", url=str(url))
    if not trace.reused or any(words in str(exc.message) for words in _OWN_FAULTS):
        return BadResponse(f"unusable response: {exc.message}", url=str(url))
    return ProtocolError(f"unparsable response: {exc.message}", url=str(url))


def _oversized(cause: BaseException | None) -> bool:
    # aiohttp's C parser raises a plain HttpProcessingError for this; its words are the tell.
    return isinstance(cause, LineTooLong) or "Got more than" in str(cause)


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, url: URL) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > cap:
            resp.close()
            raise BodyTooLarge(f"body is over the {cap}-byte cap (after decompression)",
                               url=str(url))
        chunks.append(chunk)
    return b"".join(chunks)


async def _discard(resp: aiohttp.ClientResponse) -> None:
    """Drop a body we do not want, keeping the connection when that is cheap."""
    declared = resp.content_length
    if declared is not None and declared <= _DRAIN_LIMIT:
        try:
            await resp.read()
            return
        except (TimeoutError, aiohttp.ClientError):
            pass
    resp.close()


def _timeouts(cfg: CrawlConfig) -> str:
    return (f"limits: {cfg.connect_timeout:g}s to connect, {cfg.read_timeout:g}s between "
            f"reads, {cfg.timeout:g}s in all")


_USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")


def _redacted(text: str) -> str:
    """An error's text without the user name and password of any URL in it (a proxy's)."""
    return _USERINFO.sub(f"{REDACTED}@", text)
