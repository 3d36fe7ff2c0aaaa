"""Before the first fetch: the spider's start requests, the crawl's scope, opening the
crawl in the store (unless the state file holds another crawl), and whether the crawl may
connect to private networks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from crawler.config import CrawlConfig
from crawler.errors import SpiderError, StateFileError
from crawler.http.transport import Transport
from crawler.model import callsite
from crawler.model.callshape import shape_of
from crawler.model.callsite import located
from crawler.model.loader import user_error
from crawler.model.request import Request
from crawler.model.spider import Spider
from crawler.observe import logs
from crawler.policy import identity
from crawler.urls import canon
from crawler.urls.canon import CanonicalURL
from crawler.urls.scope import Scope
from storage import NewRequest, RunInfo, Store

log = logging.getLogger("crawler")
status_log = logging.getLogger(logs.STATUS)


@dataclass(slots=True)
class Seeds:
    """The spider's start requests: their canonical URLs, and the requests to store."""

    keys: list[CanonicalURL] = field(default_factory=list)
    requests: list[NewRequest] = field(default_factory=list)

    def parsed(self) -> list[URL]:
        """The start URLs parsed: the scope and the private-network check need their parts."""
        return [canon.parsed(key) for key in self.keys]


async def start_requests(spider: Spider) -> Seeds:
    """The spider's start requests, read before the state file is opened: they are part of
    the crawl's identity, and they set its scope."""
    seeds = Seeds()
    check_callback(spider, "parse")
    requests = spider.start_requests()
    try:
        await _read_seeds(spider, requests, seeds)
    except SpiderError as exc:
        raise located(exc, callsite.start_line(requests, spider)) from None
    except Exception as exc:  # the user's code: said at the user's line
        raise SpiderError(f"{type(spider).__name__}.start_requests() failed: "
                          f"{user_error(exc)}") from exc
    return seeds


async def _read_seeds(spider: Spider, requests: AsyncIterator[Request], seeds: Seeds) -> None:
    async for req in requests:
        if not isinstance(req, Request):
            raise SpiderError(f"start_requests() yielded {req!r}; yield Request objects")
        key = req.key
        if key is None:
            raise SpiderError(f"bad start URL: {_why_not(req)}")
        if req.credentials:
            log.warning("start URL %s named a user or password: the crawler never sends "
                        "credentials found in URLs", key, extra={"url": key})
        if req.callback is not None:
            check_callback(spider, req.callback)
        seeds.keys.append(key)
        seeds.requests.append(_seed(req, key, len(seeds.requests)))


def _seed(req: Request, key: CanonicalURL, index: int) -> NewRequest:
    """The start request to store. Every run adds the start requests again (a resumed crawl
    may have new ones), so a dont_filter one is keyed by its place among them instead of at
    random: adding it again adds nothing, and it is sent once a crawl, not once a run."""
    seed = NewRequest(key, req.callback, req.cb_kwargs_json, req.priority, 0, 0, None,
                      *(req.extra or ()))
    return seed._replace(unique=f"seed {index}") if seed.unique else seed


def check_callback(spider: Spider, name: str) -> None:
    """Refuse a callback of a shape the crawl cannot call before anything is fetched: a
    `def parse` that returns a dict would otherwise fail every page it is given."""
    method = getattr(spider, name, None)
    if method is None:
        raise SpiderError(f"{type(spider).__name__} has no callback named {name!r}")
    shape_of(method, name)


def _why_not(req: Request) -> str:
    """What is wrong with a request's URL, one that has no canonical form."""
    try:
        req.absolute_url  # noqa: B018 (it raises the error that says what is wrong)
    except ValueError as exc:
        return str(exc)
    return f"not a crawlable URL: {req.url!r}"


async def allow_private_if_started_there(transport: Transport, starts: list[URL]) -> None:
    """A crawl that starts on a private network may stay on it; one that starts on the
    public internet must never be steered into one (the transport checks every address
    it connects to)."""
    if transport.allow_private:
        return
    hosts = sorted({url.host for url in starts if url.host})
    for start in range(0, len(hosts), 64):  # a few lookups at a time, up to the first
        batch = hosts[start : start + 64]
        kinds = await asyncio.gather(*map(transport.private_kind, batch))
        found = next(((h, k) for h, k in zip(batch, kinds, strict=True) if k), None)
        if found is not None:
            log.info("start URL host %s is a %s address: private networks are allowed",
                     *found, extra={"host": found[0]})
            transport.allow_private = True
            return


def crawl_scope(spider: Spider, starts: list[URL]) -> Scope:
    """The start URLs' hosts (or the spider's allowed_hosts) on the start URLs' ports, 80,
    443 and the spider's allowed_ports."""
    started = Scope.of_urls(starts, subdomains=spider.allow_subdomains,
                            ports=spider.allowed_ports)
    if spider.allowed_hosts is None:
        return started
    return Scope(spider.allowed_hosts, subdomains=spider.allow_subdomains, ports=started.ports)


async def open_crawl(store: Store, spider: Spider, config: CrawlConfig,
                     start_keys: list[CanonicalURL], *, fresh: bool) -> RunInfo:
    """Open the crawl, unless the state file holds another one (`crawler.policy.identity`)."""
    current = identity.of(spider, config, start_keys)
    # The store is a StateStore: its refusals arrive as StateFileError.
    stored = await store.identity()
    if stored is not None and not fresh:
        _check_identity(store.location, identity.from_text(stored), current)
    info = await store.open_crawl(spider.name, config.to_json(), fresh=fresh,
                                  identity=identity.to_text(current),
                                  depth_limit=config.max_depth)
    if stored is None and info.resumed:
        status_log.warning("%s did not record which crawl it holds (an older version made "
                           "it); this command's spider, start URLs and settings are recorded "
                           "as its own", store.location)
    if not start_keys and info.counts.queued == 0:
        status_log.warning("spider '%s' has no start requests: nothing to crawl (give it "
                           "start_urls, or start URLs on the command line)", spider.name)
    return info


def _check_identity(location: str, stored: dict[str, Any], current: dict[str, Any]) -> None:
    if stored.get("spider", current["spider"]) != current["spider"]:
        return  # the store refuses another spider's file in its own words
    comparison = identity.compare(stored, current)
    if comparison.refused:
        raise StateFileError(identity.refusal(location, comparison))
    if comparison.widenings:
        # max_depth raised: the links parked beyond the old one are queued by open_crawl.
        status_log.warning("widening the crawl in %s: %s", location,
                           "; ".join(comparison.widenings))
