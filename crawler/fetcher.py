"""HTTP for the whole crawl: ONE ClientSession on ONE TCPConnector. The only aiohttp user.

It fetches exactly one hop (redirects are the engine's, so each hop is checked for scope and
dedup), streams the body under a size cap (which also bounds decompression bombs), and turns
aiohttp's errors into the crawler's own, each saying whether a retry may help.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.http_exceptions import ContentEncodingError, LineTooLong
from aiohttp.resolver import AsyncResolver
from multidict import CIMultiDictProxy
from yarl import URL

from crawler.config import CrawlConfig
from crawler.errors import (
    BadResponse,
    BodyTooLarge,
    ConnectError,
    FetchError,
    FetchTimeout,
    ProtocolError,
    TLSError,
)

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Small leftovers are read so the connection goes back to the pool; big ones are cut off.
_DRAIN_LIMIT = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CLOSE = {"Connection": "close"}


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


WantBody = Callable[[int, CIMultiDictProxy[str]], bool]


class _StaticResolver(AbstractResolver):
    """Answers configured names itself (like curl --resolve), asks c-ares for the rest."""

    def __init__(self, overrides: Mapping[str, str]) -> None:
        self._overrides = {host.lower(): addr for host, addr in overrides.items()}
        self._fallback = AsyncResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addr = self._lookup(host.lower())
        if addr is None:
            return await self._fallback.resolve(host, port, family)
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        return [ResolveResult(hostname=host, host=addr, port=port, family=fam, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    def _lookup(self, host: str) -> str | None:
        """An exact entry, else the closest "*.domain" wildcard entry."""
        addr = self._overrides.get(host)
        while addr is None and "." in host:
            host = host.split(".", 1)[1]
            addr = self._overrides.get(f"*.{host}")
        return addr

    async def close(self) -> None:
        await self._fallback.close()


class Fetcher:
    """Use as `async with Fetcher(config) as fetcher: await fetcher.fetch(url)`."""

    def __init__(self, config: CrawlConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._resolver: AbstractResolver | None = None

    async def __aenter__(self) -> Fetcher:
        cfg = self._config
        # The connector does not own a resolver it is given: we close it ourselves.
        resolver = self._resolver = (
            _StaticResolver(cfg.resolve) if cfg.resolve else AsyncResolver()
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
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=cfg.timeout, connect=cfg.connect_timeout,
                                          sock_read=cfg.read_timeout),
            headers={"User-Agent": cfg.user_agent, "Accept": ACCEPT},
            # Cookies are not part of the crawl's durable state; keep runs reproducible.
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def fetch(self, url: URL, want_body: WantBody | None = None, *,
                    keep_alive: bool = True) -> FetchResult:
        """One GET, no redirects followed. `want_body(status, headers)` may decline the body.

        `keep_alive=False` asks the server to close the connection after this response: an
        idle keep-alive socket is not counted by aiohttp's `limit`, so a crawl of thousands
        of hosts would otherwise hold one open per host until `keepalive_timeout`.
        """
        if self._session is None:
            raise RuntimeError("Fetcher is not open")
        try:
            return await self._get(self._session, url, want_body, keep_alive)
        except FetchError:
            raise
        except aiohttp.ClientResponseError as exc:
            # Raised before any server status exists: a client-made "400", not the server's.
            if _oversized(exc.__cause__):  # the same every time
                raise BadResponse(f"response headers too large: {exc.message}",
                                  url=str(url)) from exc
            # Other parse errors can come from a reused connection that a previous response
            # left dirty (bytes past its end): a fresh connection may well succeed.
            raise ProtocolError(f"unparsable response: {exc.message}", url=str(url)) from exc
        except aiohttp.ClientSSLError as exc:  # before ClientConnectorError, its base
            raise TLSError(f"TLS failed with {url.host}: {exc}", url=str(url)) from exc
        except aiohttp.ClientConnectorDNSError as exc:
            raise ConnectError(f"DNS lookup failed for {url.host}: {exc.os_error}",
                               url=str(url)) from exc
        except aiohttp.ClientConnectorError as exc:
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
        except aiohttp.InvalidURL as exc:
            raise BadResponse(f"invalid URL: {exc}", url=str(url)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ProtocolError(f"{type(exc).__name__}: {exc}", url=str(url)) from exc

    async def _get(self, session: aiohttp.ClientSession, url: URL,
                   want_body: WantBody | None, keep_alive: bool) -> FetchResult:
        cap = self._config.max_body
        extra = None if keep_alive else _CLOSE
        async with session.get(url, allow_redirects=False, headers=extra) as resp:
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
