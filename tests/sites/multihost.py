"""A slow site served under several host names at once, for politeness tests.

One application answers for every host: serve it on several loopback addresses (127.0.0.2,
127.0.0.3, ...) with :func:`tests.sites.serve.serve_many` (one runner, one port for all by
default), or with several ``serve(app, host=...)`` calls in the same event loop; the crawler
maps names like ``a.test`` to those addresses with its static resolve option, so the name
arrives in the ``Host`` header.  The site does not care which address a request came in on:
the Host header alone decides which "host" a request belongs to.

Per host, the pages are ``/`` and ``/p/1.html`` .. ``/p/<pages_per_host - 1>.html``
(``pages_per_host`` pages in all, see :func:`host_page_paths`).  Every page first sleeps
``delay_s`` and then returns HTML linking (root-relative) to the next ``fanout`` pages of the
same host and back to ``/``, so all of them are reachable from ``/`` and the frontier grows
quickly.  ``/robots.txt`` answers the ``robots_txt`` argument (default: allow everything)
after the same delay; any other path is a 404 after the delay.

Every request is recorded in ``app[RECORDS]`` as a :class:`RequestRecord` (Host header
name without port, lower-cased; ``path_qs``; ``time.monotonic()`` at start and end), so the
helpers below can measure per-host concurrency, spacing and cross-host parallelism.  The
records are appended when a request finishes (also if it was cancelled).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

__all__ = [
    "RECORDS",
    "RequestRecord",
    "host_page_paths",
    "loopback_hosts",
    "make_app",
    "max_concurrency",
    "min_start_gap",
    "overlapping_hosts",
    "peak_parallel_hosts",
    "records_by_host",
]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    host: str  # Host header name, lower-case, without port
    path: str  # request.path_qs
    start: float  # time.monotonic() when the handler started
    end: float  # time.monotonic() when the handler finished


#: Every request served, in order of completion.
RECORDS: web.AppKey[list[RequestRecord]] = web.AppKey("multihost_records", list)
_CONFIG: web.AppKey[_Config] = web.AppKey("multihost_config")


@dataclass(frozen=True, slots=True)
class _Config:
    delay_s: float
    pages_per_host: int
    fanout: int
    robots: bytes | None


def loopback_hosts(count: int, first: int = 2) -> list[str]:
    """``["127.0.0.2", "127.0.0.3", ...]``: ``count`` loopback addresses to serve on."""
    if not 0 < first <= first + count - 1 <= 254:
        raise ValueError("addresses must stay within 127.0.0.1 .. 127.0.0.254")
    return [f"127.0.0.{first + i}" for i in range(count)]


def host_page_paths(pages_per_host: int = 30) -> list[str]:
    """The HTML pages of one host: ``["/", "/p/1.html", ..., "/p/<n-1>.html"]``."""
    return ["/"] + [f"/p/{i}.html" for i in range(1, pages_per_host)]


def _page_path(i: int) -> str:
    return "/" if i == 0 else f"/p/{i}.html"


def _request_host(request: web.Request) -> str:
    raw = request.headers.get("Host", "")
    if raw.startswith("["):
        return raw[1:].partition("]")[0].lower()
    return raw.rpartition(":")[0].lower() if ":" in raw else raw.lower()


def _page_index(path: str, pages: int) -> int | None:
    if path == "/":
        return 0
    if path.startswith("/p/") and path.endswith(".html"):
        digits = path[3:-5]
        if digits.isdigit() and digits == str(int(digits)) and 0 < int(digits) < pages:
            return int(digits)
    return None


def _render(host: str, i: int, config: _Config) -> bytes:
    name = html.escape(host)
    links = "".join(
        f'<li><a href="{_page_path(j)}">page {j}</a></li>\n'
        for j in range(i + 1, min(i + 1 + config.fanout, config.pages_per_host))
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{name} page {i}</title></head>\n<body>\n"
        f'<h1>{name} page {i}</h1>\n<ul>\n<li><a href="/">home</a></li>\n{links}</ul>\n'
        "</body></html>\n"
    ).encode()


async def _handle(request: web.Request) -> web.StreamResponse:
    start = time.monotonic()
    host = _request_host(request)
    config = request.app[_CONFIG]
    try:
        await asyncio.sleep(config.delay_s)
        i = _page_index(request.path, config.pages_per_host)
        if i is not None and not request.query_string:
            return web.Response(
                body=_render(host, i, config),
                headers={"Content-Type": "text/html; charset=utf-8"},
            )
        if request.path_qs == "/robots.txt" and config.robots is not None:
            return web.Response(
                body=config.robots, headers={"Content-Type": "text/plain; charset=utf-8"}
            )
        return web.Response(status=404, text="not found")
    finally:
        request.app[RECORDS].append(
            RequestRecord(host=host, path=request.path_qs, start=start, end=time.monotonic())
        )


def make_app(
    delay_s: float = 0.05,
    pages_per_host: int = 30,
    *,
    fanout: int = 5,
    robots_txt: str | None = "User-agent: *\nAllow: /\n",
) -> web.Application:
    """The multi-host politeness site (see the module docstring)."""
    if pages_per_host < 1 or fanout < 1 or delay_s < 0:
        raise ValueError("need pages_per_host >= 1, fanout >= 1, delay_s >= 0")
    app = web.Application()
    app[_CONFIG] = _Config(
        delay_s=delay_s,
        pages_per_host=pages_per_host,
        fanout=fanout,
        robots=robots_txt.encode() if robots_txt is not None else None,
    )
    app[RECORDS] = []
    app.router.add_get("/{tail:.*}", _handle)
    return app


# --------------------------------------------------------------------------------------
# Pure helpers over records.  Intervals are half-open [start, end): a request that ends at
# the very moment another starts does not overlap it, and zero-length records count for
# nothing in the concurrency measures.


def records_by_host(records: Iterable[RequestRecord]) -> dict[str, list[RequestRecord]]:
    """Records grouped by host, each group sorted by start time."""
    groups: defaultdict[str, list[RequestRecord]] = defaultdict(list)
    for record in records:
        groups[record.host].append(record)
    return {host: sorted(rs, key=lambda r: r.start) for host, rs in groups.items()}


def _events(records: Iterable[RequestRecord]) -> list[tuple[float, int, str]]:
    events: list[tuple[float, int, str]] = []
    for r in records:
        if r.end > r.start:
            events.append((r.start, 1, r.host))
            events.append((r.end, -1, r.host))
    events.sort(key=lambda e: (e[0], e[1]))  # at equal times, ends (-1) before starts (+1)
    return events


def max_concurrency(records: Iterable[RequestRecord], host: str) -> int:
    """Peak number of requests to ``host`` in progress at the same moment."""
    peak = current = 0
    for _, delta, _ in _events(r for r in records if r.host == host):
        current += delta
        peak = max(peak, current)
    return peak


def min_start_gap(records: Iterable[RequestRecord], host: str) -> float:
    """Smallest gap between consecutive request start times to ``host`` (``inf`` if < 2)."""
    starts = sorted(r.start for r in records if r.host == host)
    return min((b - a for a, b in itertools.pairwise(starts)), default=math.inf)


def peak_parallel_hosts(records: Iterable[RequestRecord]) -> int:
    """Peak number of distinct hosts that had a request in progress at the same moment."""
    active: defaultdict[str, int] = defaultdict(int)
    busy = peak = 0
    for _, delta, host in _events(records):
        before = active[host]
        active[host] = before + delta
        if before == 0 and delta > 0:
            busy += 1
        elif before + delta == 0:
            busy -= 1
        peak = max(peak, busy)
    return peak


def overlapping_hosts(records: Iterable[RequestRecord]) -> bool:
    """True if requests to at least two different hosts were ever in progress at once."""
    return peak_parallel_hosts(records) >= 2
