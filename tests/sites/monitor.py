"""Several hosts with known answers, for checking what a crawl's metrics say.

One application answers for every host name (the ``Host`` header decides): serve it with
:func:`tests.sites.serve.serve_many` and map ``a.test``, ``b.test``, ... to the addresses.
Per host, ``/`` and ``/p/1`` .. ``/p/<pages - 1>`` each link to the next ``fanout`` pages and to
``/gone/<i>``, a 404, on every ``gone_every``-th page. Hosts listed in ``slow`` sleep
``slow_delay`` seconds before every answer; the others answer at once (after ``delay``).
``/robots.txt`` is a 404 (everything allowed).

The server counts, per host, the requests it answered and the client ports they came from
(one per connection the client opened): ``app[SEEN]``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["SEEN", "HostLog", "expected_gone", "make_app"]


@dataclass
class HostLog:
    requests: int = 0
    pages: int = 0  # answers with a page (status 200)
    missing: int = 0  # answers with a 404 (robots.txt included)
    ports: set[int] = field(default_factory=set)


SEEN: web.AppKey[defaultdict[str, HostLog]] = web.AppKey("monitor_seen", defaultdict)


@dataclass(frozen=True)
class _Config:
    pages: int
    fanout: int
    gone_every: int
    slow: frozenset[str]
    slow_delay: float
    delay: float


_CONFIG: web.AppKey[_Config] = web.AppKey("monitor_config", _Config)


def expected_gone(pages: int, gone_every: int) -> int:
    """How many distinct 404 links one host's pages hold."""
    return len([i for i in range(pages) if i % gone_every == 0])


def _links(i: int, pages: int, fanout: int, gone_every: int) -> str:
    hrefs = [f"/p/{j}" for j in range(i + 1, min(pages, i + 1 + fanout))]
    if i % gone_every == 0:
        hrefs.append(f"/gone/{i}")
    return "".join(f'<a href="{h}">{h}</a> ' for h in hrefs)


async def _handle(request: web.Request) -> web.Response:
    cfg = request.app[_CONFIG]
    host = (request.host or "").split(":")[0].lower()
    log = request.app[SEEN].setdefault(host, HostLog())
    log.requests += 1
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if peer:
        log.ports.add(peer[1])
    await asyncio.sleep(cfg.slow_delay if host in cfg.slow else cfg.delay)
    pages = cfg.pages
    path = request.path
    index = 0 if path == "/" else None
    if path.startswith("/p/") and path[3:].isdigit() and 0 < int(path[3:]) < pages:
        index = int(path[3:])
    if index is None:
        log.missing += 1
        return web.Response(status=404, text="not here")
    log.pages += 1
    body = (f"<html><head><title>{host} page {index}</title></head><body>"
            f"{_links(index, pages, cfg.fanout, cfg.gone_every)}</body></html>")
    return web.Response(text=body, content_type="text/html")


def make_app(*, pages: int = 20, fanout: int = 3, gone_every: int = 5,
             slow: frozenset[str] = frozenset(), slow_delay: float = 0.2,
             delay: float = 0.0) -> web.Application:
    app = web.Application()
    app[SEEN] = defaultdict(HostLog)
    app[_CONFIG] = _Config(pages, fanout, gone_every, slow, slow_delay, delay)
    app.router.add_route("GET", "/{tail:.*}", _handle)
    return app
