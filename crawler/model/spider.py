"""The base class users subclass: start URLs, scope, and parse callbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from crawler.config import HostPolicy
from crawler.model.request import Request
from crawler.model.response import Response


class Spider:
    """Subclass it: set `name` and `start_urls`, write `async def parse(self, response)` that
    yields items (dicts or dataclass instances) and requests (`response.follow(...)`).

    Settings of the same name as `CrawlConfig` fields (`delay`, `per_host`, `max_depth`, ...)
    may be set as class attributes; the command line still overrides them.
    """

    name: str = ""
    start_urls: Sequence[str] = ()
    allowed_hosts: Sequence[str] | None = None
    """Hosts (and their subdomains) the crawl may visit. None: the start URLs' hosts."""
    allow_subdomains: bool = True
    """False: only the allowed hosts themselves (and their www. twins), no other subdomain."""
    allowed_ports: Sequence[int] = ()
    """Ports allowed besides the start URLs' own and 80 and 443 (http's and https's)."""
    html_only: bool = False
    """For the default `parse` callback, skip the body of non-HTML responses and do not call
    it (they are still recorded). Other callbacks get every 2xx response."""

    # Crawl settings a spider may choose; None leaves the default.
    workers: int | None = None
    per_host: int | None = None
    delay: float | None = None
    max_pages: int | None = None
    max_depth: int | None = None
    timeout: float | None = None
    user_agent: str | None = None
    max_retries: int | None = None
    max_body: int | None = None
    max_redirects: int | None = None
    max_links: int | None = None
    obey_robots: bool | None = None
    max_crawl_delay: float | None = None
    allow_private: bool | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    strip_tracking: bool | None = None
    sort_query: bool | None = None
    host_policies: Mapping[str, HostPolicy] | None = None
    """Per-host or per-domain politeness: {"slow.example.org": HostPolicy(per_host=1, delay=5)}"""

    def __init__(self, start_urls: Sequence[str] | None = None) -> None:
        if start_urls is not None:
            self.start_urls = list(start_urls)

    async def start_requests(self) -> AsyncIterator[Request]:
        """The first requests. Seeded idempotently: a resumed crawl does not refetch them."""
        for url in self.start_urls:
            yield Request(url)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        """The default callback."""
        raise NotImplementedError(f"{type(self).__name__}.parse() is not written")
        yield  # pragma: no cover  (makes this an async generator, like the overrides)
