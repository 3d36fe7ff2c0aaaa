"""The connection pool's figures: aiohttp's trace signals (DNS, new and reused connections)
and a careful read of its internals (sockets in use, idle, waiting), for the metrics."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp


@dataclass(slots=True)
class RequestTrace:
    reused: bool = False  # sent on a keep-alive connection an earlier response used
    on_sent: Callable[[], None] | None = None  # told when the request is written


@dataclass(slots=True)
class PoolCounters:
    created: int = 0
    reused: int = 0
    dns_hits: int = 0
    dns_misses: int = 0
    dns_seconds: float = 0.0


def tracing(counters: PoolCounters) -> aiohttp.TraceConfig:
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
        if isinstance(request, RequestTrace):
            request.reused = True

    async def headers_sent(_s: object, context: SimpleNamespace, _p: object) -> None:
        # aiohttp writes the request right after this returns, without yielding in between.
        request = context.trace_request_ctx
        if isinstance(request, RequestTrace) and request.on_sent is not None:
            request.on_sent()

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
    trace.on_request_headers_sent.append(headers_sent)
    trace.on_dns_resolvehost_start.append(resolve_start)
    trace.on_dns_resolvehost_end.append(resolve_end)
    trace.freeze()
    return trace


def live_counts(connector: aiohttp.BaseConnector) -> tuple[int | None, int | None, int | None]:
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
