"""Serve a benchmark site on 127.0.0.1 and print `READY <base URL>` once it listens.

Three kinds of site:
- endless (`--pages 0`, the default): page n links to `--links` pages never linked before
  (n*L+1 .. n*L+L), like Scrapy's benchmark server, so the frontier grows without end;
- finite (`--pages N`): N pages, each linking to `--links` pages picked at random (the same
  every run) among the N, so most links are duplicates, as on a real site;
- static (`--static DIR`): the files of a folder, e.g. Python's HTML documentation.

`--style scrapy` makes endless pages like Scrapy's own benchmark server (`scrapy bench`):
`--links` links a page to `/follow?total=100000000&show=50&n=<random>`, with query strings
for the crawlers to parse and canonicalise (random per page, but the same every run).

Pages are padded to about `--size` bytes. robots.txt disallows /private/ for everyone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
from pathlib import Path

from aiohttp import web

ROBOTS = "User-agent: *\nDisallow: /private/\n"
FILLER = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
          "incididunt ut labore et dolore magna aliqua. ")


def _links(n: int, pages: int, links: int) -> list[int]:
    if pages == 0:
        return [n * links + k + 1 for k in range(links)]
    return random.Random(n).sample(range(pages), min(links, pages))


def _page(n: int, pages: int, links: int, size: int) -> bytes:
    items = "".join(f'<li><a href="/p/{m}">page {m}</a></li>' for m in _links(n, pages, links))
    head = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Page {n}</title>"
            f"</head><body><h1>Page {n}</h1><ul>{items}</ul>")
    pad = max(0, size - len(head) - 20)
    filler = f"<p>{(FILLER * (pad // len(FILLER) + 1))[:pad]}</p>" if pad else ""
    return (head + filler + "</body></html>").encode()


SCRAPY_TOTAL = 100_000_000


async def _robots(_: web.Request) -> web.Response:
    return web.Response(text=ROBOTS)


def _scrapy_page(n: int, links: int) -> bytes:
    """What Scrapy's benchserver sends, seeded by the page's own number."""
    rng = random.Random(n)
    anchors = "".join(
        f"<a href='/follow?total={SCRAPY_TOTAL}&show={links}&n={m}'>follow {m}</a><br>"
        for m in (rng.randint(1, SCRAPY_TOTAL) for _ in range(links)))
    return f"<html><head></head><body>{anchors}</body></html>".encode()


def make_scrapy_style_app(links: int) -> web.Application:
    async def follow(request: web.Request) -> web.Response:
        raw = request.query.get("n", "0")
        n = int(raw) if raw.isdigit() else 0
        return web.Response(body=_scrapy_page(n, links), content_type="text/html",
                            charset="utf-8")

    app = web.Application()
    app.router.add_get("/", follow)
    app.router.add_get("/follow", follow)
    app.router.add_get("/robots.txt", _robots)
    return app


def make_app(pages: int, links: int, size: int) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        raw = request.match_info.get("n", "0")
        if not raw.isdigit() or (pages and int(raw) >= pages):
            raise web.HTTPNotFound()
        return web.Response(body=_page(int(raw), pages, links, size),
                            content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/p/{n}", page)
    app.router.add_get("/robots.txt", _robots)
    return app


def make_static_app(folder: Path) -> web.Application:
    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(folder / "index.html")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/robots.txt", _robots)
    app.router.add_static("/", folder)
    return app


async def serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    host, bound = runner.addresses[0][:2]
    print(f"READY http://{host}:{bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchsite",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    parser.add_argument("--pages", type=int, default=0, help="0: endless (default)")
    parser.add_argument("--links", type=int, default=50, help="links a page (default: 50)")
    parser.add_argument("--size", type=int, default=0, help="pad pages to about this many "
                        "bytes (default: no padding)")
    parser.add_argument("--static", type=Path, metavar="DIR", help="serve this folder instead")
    parser.add_argument("--style", choices=["paths", "scrapy"], default="paths",
                        help="endless pages linking /p/N (default) or like Scrapy's "
                        "benchmark server")
    args = parser.parse_args()
    if args.style == "scrapy":
        app = make_scrapy_style_app(args.links)
    elif args.static is not None:
        if not (args.static / "index.html").is_file():
            sys.exit(f"benchsite: {args.static} has no index.html")
        app = make_static_app(args.static.resolve())
    else:
        app = make_app(args.pages, args.links, args.size)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(app, args.port))


if __name__ == "__main__":
    main()
