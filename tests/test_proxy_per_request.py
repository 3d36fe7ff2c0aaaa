"""A request's own `proxy=` and the private-address guard of a public crawl: its target is
checked as the crawl-wide proxy's are (the proxy connects, out of our sight), and the proxy
itself, which the user named, may be on a private address; only its (address, port) is let
through. Real servers on 127.0.0.x; the Fetcher is the one a public crawl uses."""

from __future__ import annotations

import pytest
from aiohttp import web
from yarl import URL

from crawler import CrawlConfig
from crawler.errors import PrivateAddress
from crawler.http.fetcher import Fetcher
from crawler.http.transport import Sending
from tests.sites.serve import serve


def proxy_app(forwarded: list[str]) -> web.Application:
    """A proxy that answers every absolute-URI request itself, logging its target."""
    async def answer(request: web.Request) -> web.Response:
        forwarded.append(request.raw_path)
        return web.Response(text="from the proxy")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def page_app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="direct")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app


async def test_a_request_proxy_is_reached_and_its_private_targets_refused() -> None:
    forwarded: list[str] = []
    async with serve(proxy_app(forwarded), "127.0.0.4") as proxy, \
            serve(page_app(), "127.0.0.4") as other_port:
        # A public crawl (allow_private False, as a crawl of public start URLs has it).
        config = CrawlConfig(allow_private=False, max_retries=0,
                             resolve={"sneaky.example": "127.0.0.4"})
        via = Sending(proxy=proxy)
        async with Fetcher(config) as fetcher:
            # The proxy the request names is the user's own, loopback or not.
            result = await fetcher.fetch(URL("http://public.example/a"), send=via)
            assert (result.status, result.body) == (200, b"from the proxy")
            # ...but not a way into private networks: refused before it reaches the proxy.
            with pytest.raises(PrivateAddress, match="through the proxy"):
                await fetcher.fetch(URL("http://127.0.0.9/"), send=via)
            # The proxy's address on another port is another server: still refused.
            port = URL(other_port).port
            with pytest.raises(PrivateAddress, match=r"refused to connect to 127\.0\.0\.4"):
                await fetcher.fetch(URL(f"http://sneaky.example:{port}/"))
    assert forwarded == ["http://public.example/a"]

