"""A small product catalogue for item pipelines and the Python API: `/` links to every
product page `/p/N`, and each product page to `/p/N/more` (found only there).

Product pages hold a name padded with whitespace, a price (missing on `NO_PRICE`) and a SKU
(the products of `SAME_SKU` repeat the SKU of another product). `/gone` answers 503.
"""

from __future__ import annotations

from aiohttp import web

PRODUCTS = 12
NO_PRICE = frozenset({4, 9})
SAME_SKU = {11: 1, 12: 2}  # product -> the product whose SKU it repeats


def sku(n: int) -> str:
    return f"SKU-{SAME_SKU.get(n, n)}"


def price(n: int) -> str:
    return "" if n in NO_PRICE else f"{n}.50"


def make_app(products: int = PRODUCTS) -> web.Application:
    async def index(request: web.Request) -> web.Response:
        links = "".join(f'<a href="/p/{n}">product {n}</a>' for n in range(1, products + 1))
        return web.Response(text=f"<html><body>{links}</body></html>",
                            content_type="text/html")

    async def product(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if not 1 <= n <= products:
            raise web.HTTPNotFound()
        return web.Response(content_type="text/html", text=(
            f"<html><body><h1>\n  Widget {n}  \n</h1>"
            f'<span class="price">{price(n)}</span><span class="sku">{sku(n)}</span>'
            f'<a href="/p/{n}/more">more</a></body></html>'))

    async def more(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>more</body></html>", content_type="text/html")

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=503, text="gone")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/p/{n}", product)
    app.router.add_get("/p/{n}/more", more)
    app.router.add_get("/gone", gone)
    return app
