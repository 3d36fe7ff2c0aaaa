"""The bare pipeline: the least a crawler on our libraries can do per page, as a yardstick.

    python bench/bare.py URL --pages N --workers C

aiohttp fetch + selectolax link extraction + yarl joins + batched aiosqlite inserts of the
items and the discovered URLs. The frontier and the seen-set live in memory; there is no
politeness, no robots.txt, no retry and no resume. Prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time

import aiohttp
import aiosqlite
from selectolax.lexbor import LexborHTMLParser
from yarl import URL

BATCH = 500


async def crawl(start: str, pages: int, workers: int, db_path: str) -> int:
    host = URL(start).host
    queue: asyncio.Queue[str] = asyncio.Queue()
    seen = {start}
    queue.put_nowait(start)
    fetched = 0
    items: list[tuple[str, str]] = []
    found: list[tuple[str]] = []
    db = await aiosqlite.connect(db_path)
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = NORMAL")
    await db.execute("CREATE TABLE items (url TEXT, title TEXT)")
    await db.execute("CREATE TABLE urls (url TEXT PRIMARY KEY)")

    writing = asyncio.Lock()  # one connection: one batch at a time

    async def flush() -> None:
        batch_items, batch_urls = items[:], found[:]
        items.clear()
        found.clear()
        async with writing:
            await db.executemany("INSERT INTO items VALUES (?, ?)", batch_items)
            await db.executemany("INSERT OR IGNORE INTO urls VALUES (?)", batch_urls)
            await db.commit()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal fetched
        while fetched < pages:
            try:
                url = await asyncio.wait_for(queue.get(), 5)
            except TimeoutError:
                return
            fetched += 1
            try:
                async with session.get(url) as resp:
                    body = await resp.read()
                    ctype = resp.headers.get("Content-Type", "")
            except aiohttp.ClientError:
                continue
            if "html" not in ctype:
                continue
            tree = LexborHTMLParser(body)
            title = tree.css_first("title")
            items.append((url, title.text() if title else ""))
            for text in _links(tree, URL(url), host):
                if text not in seen:
                    seen.add(text)
                    found.append((text,))
                    queue.put_nowait(text)
            if len(items) >= BATCH:
                await flush()

    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(workers)))
    await flush()
    await db.close()
    return fetched


def _links(tree: LexborHTMLParser, base: URL, host: str | None) -> list[str]:
    found = []
    for node in tree.css("a[href]"):
        href = node.attributes.get("href")
        if not href:
            continue
        try:
            link = base.join(URL(href)).with_fragment(None)
        except ValueError:
            continue
        if link.host == host:
            found.append(str(link))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bare.db")
        wall0 = time.perf_counter()
        fetched = asyncio.run(crawl(args.url, args.pages, args.workers, path))
        wall = time.perf_counter() - wall0
        size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
    print(json.dumps({"requests": fetched, "wall": wall, "state_bytes": size}))


if __name__ == "__main__":
    main()
