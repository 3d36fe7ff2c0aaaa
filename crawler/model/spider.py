"""The base class users subclass: start URLs, scope, and parse callbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from crawler import settings
from crawler.config import SPIDER_SETTINGS, CrawlConfig
from crawler.errors import SpiderError
from crawler.model.request import Request
from crawler.model.response import Response


class Spider:
    """Subclass it: set `name` and `start_urls`, write `async def parse(self, response)` that
    yields items (dicts or dataclass instances) and requests (`response.follow(...)`).

    These crawl settings may be set as class attributes (`delay = 1.0`); the command line
    still overrides them. A class attribute one typo away from one of them (`dealy = 1.0`)
    is refused with the name meant:
    """

    name: str = ""
    start_urls: Sequence[str] = ()
    allowed_hosts: Sequence[str] | None = None
    """Hosts (and their subdomains) the crawl may visit. None: the start URLs' hosts."""
    allow_subdomains: bool = True
    """False: only the allowed hosts themselves (and their www. twins), no other subdomain."""
    allowed_ports: Sequence[int] = ()
    """Ports allowed besides the start URLs' own and 80 and 443 (http's and https's)."""
    handle_statuses: Sequence[int] = ()
    """HTTP statuses besides 2xx that reach the callbacks (e.g. [404]), as they come: not
    retried, not followed. A request's own `handle_statuses=` adds to them."""
    html_only: bool = False
    """For the default `parse` callback, skip the body of non-HTML responses and do not call
    it (they are still recorded). Other callbacks get every 2xx response."""
    pipelines: Sequence[object] = ()
    """Objects every item passes through, in this order, before it is stored: each has
    `process(item)` (sync or async) returning the item or a new one, or raising
    `DropItem(reason)`; `open()` and `close()` are called once a run, if it has them."""
    converters: Mapping[type, Callable[[Any], Any]] = MappingProxyType({})
    """{type: function} for items (and values in items) that are not dicts or dataclasses:
    the function returns a dict for an item, anything JSON for a value."""

    def __init__(self, start_urls: Sequence[str] | None = None) -> None:
        if start_urls is not None:
            _not_one_string(start_urls, "start_urls=")
            self.start_urls = list(start_urls)

    async def start_requests(self) -> AsyncIterator[Request]:
        """The first requests. Seeded idempotently: a resumed crawl does not refetch them."""
        _not_one_string(self.start_urls, f"{type(self).__name__}.start_urls")
        for url in self.start_urls:
            yield Request(url)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        """The default callback."""
        raise NotImplementedError(f"{type(self).__name__}.parse() is not written")
        yield  # pragma: no cover  (makes this an async generator, like the overrides)


def _not_one_string(urls: object, what: str) -> None:
    """A string is a sequence too: each of its characters would be a start URL."""
    if isinstance(urls, str | bytes):
        raise SpiderError(f"{what} must be a list of URLs, not one string: [{urls!r:.80}]")


# The settings a spider may set come from CrawlConfig's declarations, not from a second list
# here: each is an attribute of None ("not set") and a line of the docstring.
for _name in SPIDER_SETTINGS:
    setattr(Spider, _name, None)
Spider.__doc__ = (f"{(Spider.__doc__ or '').rstrip()}\n"
                  f"{settings.describe(CrawlConfig, spider=True)}\n")
