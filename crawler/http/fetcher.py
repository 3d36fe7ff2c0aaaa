"""HTTP for the whole crawl: ONE ClientSession on ONE TCPConnector. The only aiohttp user.

It fetches exactly one hop (redirects are the engine's, so each hop is checked for scope and
dedup), streams the body under a size cap (which also bounds decompression bombs), and turns
aiohttp's errors into the crawler's own, each saying whether a retry may help.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace, TracebackType

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.http_exceptions import ContentEncodingError, LineTooLong
from aiohttp.resolver import AsyncResolver
from yarl import URL

from crawler.config import CrawlConfig
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
from crawler.http.transport import REDIRECT_STATUSES, FetchResult, Sending, WantBody
from crawler.observe.metrics import PoolStats
from crawler.urls.addresses import private_kind

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Small leftovers are read so the connection goes back to the pool; big ones are cut off.
_DRAIN_LIMIT = 64 * 1024
_CLOSE = {"Connection": "close"}


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


@dataclass(slots=True)
class _RequestTrace:
    reused: bool = False  # sent on a keep-alive connection an earlier response used


class _Refused(OSError):
    """Raised where a socket would be made for a private address. One message for all, so
    that aiohappyeyeballs, which merges the errors of several addresses unless their texts
    agree, hands this very exception on."""

    def __init__(self, address: str, kind: str) -> None:
        super().__init__("private address refused")
        self.address = address
        self.kind = kind


@dataclass(slots=True)
class _PoolCounters:
    created: int = 0
    reused: int = 0
    dns_hits: int = 0
    dns_misses: int = 0
    dns_seconds: float = 0.0


def _tracing(counters: _PoolCounters) -> aiohttp.TraceConfig:
    """aiohttp's only public window on its pool: signals for DNS and connections."""
    trace = aiohttp.TraceConfig()

    async def dns_hit(*_: object) -> None:
        counters.dns_hits += 1

    async def dns_miss(*_: object) -> None:
        counters.dns_misses += 1

    async def created(*_: object) -> None:
        counters.created += 1

    async def reused(_s: object, context: SimpleNamespace, _p: object) -> None:
        counters.reused += 1
        request = context.trace_request_ctx
        if isinstance(request, _RequestTrace):
            request.reused = True

    async def resolve_start(_s: object, context: SimpleNamespace, _p: object) -> None:
        context.dns_started = time.monotonic()

    async def resolve_end(_s: object, context: SimpleNamespace, _p: object) -> None:
        started = getattr(context, "dns_started", None)
        if started is not None:
            counters.dns_seconds += time.monotonic() - started

    trace.on_dns_cache_hit.append(dns_hit)
    trace.on_dns_cache_miss.append(dns_miss)
    trace.on_connection_create_end.append(created)
    trace.on_connection_reuseconn.append(reused)
    trace.on_dns_resolvehost_start.append(resolve_start)
    trace.on_dns_resolvehost_end.append(resolve_end)
    trace.freeze()
    return trace


def _live_counts(connector: aiohttp.BaseConnector) -> tuple[int | None, int | None, int | None]:
    """Sockets in use, idle keep-alive sockets and requests waiting for a slot.

    aiohttp has no public pool statistics, so this reads its internals (as of 3.9-3.14); an
    aiohttp that changed them gives None for what it no longer has, never an error.
    """
    def read(count: Callable[[], int]) -> int | None:
        try:
            return count()
        except Exception:  # whatever a changed internal raises, a crawl must not stop
            return None

    def idle() -> int:
        # Entries whose server has closed them stay listed until the pool next looks.
        return sum(1 for conns in connector._conns.values()
                   for proto, _ in conns if proto.is_connected())

    return (read(lambda: len(connector._acquired)), read(idle),
            read(lambda: sum(len(w) for w in connector._waiters.values())))


def process_sockets() -> int | None:
    """Sockets this process has open (None where the OS does not say: not Linux)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for name in names:
        try:
            count += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
        except OSError:  # closed since it was listed
            continue
    return count


class Fetcher:
    """Use as `async with Fetcher(config) as fetcher: await fetcher.fetch(url)`."""

    def __init__(self, config: CrawlConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._resolver: AbstractResolver | None = None
        self._counters = _PoolCounters()
        self.allow_private = config.allow_private
        """Whether sockets may be opened to private addresses (see crawler.urls.addresses)."""

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
        if not self.allow_private:
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
            in_use, idle, waiting = _live_counts(connector)
        return PoolStats(in_use, idle, waiting, c.created, c.reused, c.dns_hits, c.dns_misses,
                         c.dns_seconds, process_sockets() if count_process_sockets else None)

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
            socket_factory=self._socket,
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
            trace_configs=[_tracing(self._counters)],
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
                    keep_alive: bool = True, send: Sending | None = None) -> FetchResult:
        """One GET (or what `send` says), no redirects followed. `want_body(status, headers)`
        may decline the body.

        `keep_alive=False` asks the server to close the connection after this response: an
        idle keep-alive socket is not counted by aiohttp's `limit`, so a crawl of thousands
        of hosts would otherwise hold one open per host until `keepalive_timeout`.
        """
        if self._session is None:
            raise RuntimeError("Fetcher is not open")
        if url.raw_user is not None or url.raw_password is not None:
            url = url.with_user(None)  # never sent, whatever a state file holds
        trace = _RequestTrace()
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
        except aiohttp.InvalidURL as exc:
            raise BadResponse(f"invalid URL: {exc}", url=str(url)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ProtocolError(f"{type(exc).__name__}: {exc}", url=str(url)) from exc

    async def _get(self, session: aiohttp.ClientSession, url: URL, want_body: WantBody | None,
                   keep_alive: bool, trace: _RequestTrace, *,
                   send: Sending | None) -> FetchResult:
        cap = self._config.max_body
        extra = None if keep_alive else _CLOSE
        if send is None:  # a plain GET: the crawl's fast path
            request = session.get(url, allow_redirects=False, headers=extra,
                                  trace_request_ctx=trace)
        else:
            sent = [*send.headers, *_CLOSE.items()] if extra else send.headers
            request = session.request(
                send.method, url, allow_redirects=False, headers=sent, data=send.body,
                cookies=send.cookies or None, proxy=send.proxy, trace_request_ctx=trace)
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


def _unparsable(exc: aiohttp.ClientResponseError, url: URL, trace: _RequestTrace) -> FetchError:
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
