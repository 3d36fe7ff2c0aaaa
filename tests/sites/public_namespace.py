"""Run inside a network namespace of its own (`unshare --net`): a "public" site on
198.51.100.7 (a documentation address, given to this namespace's loopback interface) and
"private" servers on 127.0.0.1 and 169.254.169.254 (the cloud metadata address), all on one
port. Crawls them three ways and prints what each server saw and what the state file says,
as JSON, for tests/test_private_networks.py. Nothing here can reach any real network."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from crawler import CrawlConfig
from spiders.site import SiteSpider
from tests.crawling import crawl

PUBLIC, LOOPBACK, METADATA = "198.51.100.7", "127.0.0.1", "169.254.169.254"
RESOLVE = {"pub.test": PUBLIC, "inner.pub.test": LOOPBACK, "meta.pub.test": METADATA}


def _setup_namespace(parent_namespace: int) -> None:
    if os.stat("/proc/self/ns/net").st_ino == parent_namespace:
        sys.exit("refusing to run outside a network namespace of its own (use unshare --net)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in (PUBLIC, METADATA):
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)


def _app(name: str, seen: Counter[str], port: int) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        seen[f"{name}{request.path}"] += 1
        if request.path == "/robots.txt":
            raise web.HTTPNotFound()
        if request.path == "/jump":
            raise web.HTTPFound(f"http://inner.pub.test:{port}/via-redirect")
        links = ["/a", "/jump", f"http://inner.pub.test:{port}/secret",
                 f"http://meta.pub.test:{port}/latest/meta-data/"]
        anchors = "".join(f'<a href="{href}">x</a>' for href in links)
        return web.Response(text=f"<title>{name}</title>{anchors}", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def _main(parent_namespace: int) -> dict[str, Any]:
    _setup_namespace(parent_namespace)
    seen: Counter[str] = Counter()
    runners = []
    port = 0
    for name, address in (("public", PUBLIC), ("loopback", LOOPBACK), ("metadata", METADATA)):
        runner = web.AppRunner(_app(name, seen, port or 8080), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, address, port or 8080).start()
        runners.append(runner)
        port = 8080
    config = CrawlConfig(delay=0, workers=4, max_retries=1, retry_backoff=0.01, timeout=5,
                         resolve=RESOLVE)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run, start, settings in (
            ("public", f"http://pub.test:{port}/", {}),
            ("allowed", f"http://pub.test:{port}/", {"allow_private": True}),
            ("private_start", f"http://inner.pub.test:{port}/", {}),
        ):
            seen.clear()
            out = await crawl(SiteSpider([start]), Path(tmp) / f"{run}.db",
                              CrawlConfig(**{**_fields(config), **settings}))
            report[run] = {"seen": dict(seen), "rows": out.rows,
                           "counters": dict(out.result.counts.counters)}
    for runner in runners:
        await runner.cleanup()
    return report


def _fields(config: CrawlConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


if __name__ == "__main__":
    # The caller's namespace, to be sure this one is another: argv[1], from os.stat's st_ino.
    print(json.dumps(asyncio.run(_main(int(sys.argv[1])))))
