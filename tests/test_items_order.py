"""Items of a crawl several processes write at once are numbered in commit order: a reader
going on from the last item it saw (`iter_items`, a feed) never skips one that another
process commits later. Two stores on one crawl group-commit at once, as two crawl processes
do, while a reader follows `items_after` from the last id it saw."""

from __future__ import annotations

import asyncio

from storage import Completion, NewRequest, open_store
from storage.postgres import PostgresStore

NOW = 1_000_000.0
ROUNDS, BATCH = 30, 20


async def writer(url: str, host: str, written: list[str]) -> None:
    store = await open_store(url)
    assert isinstance(store, PostgresStore)
    store.plan(1)
    try:
        await store.open_crawl("spider", "{}", fresh=False)
        await store.add([NewRequest(f"http://{host}/{i}") for i in range(ROUNDS * BATCH)])
        for _ in range(ROUNDS):
            for request in await store.claim(BATCH, NOW):
                item = f'"{request.url}"'
                await store.record(Completion(request.id, 200, items=[item] * 3))
                written.append(item)
            await store.flush()
    finally:
        await store.close()


async def test_a_reader_following_the_last_id_misses_no_item(pg_url: str) -> None:
    written: list[str] = []
    seen: list[str] = []
    reader = await open_store(pg_url)
    await reader.open_crawl("spider", "{}", fresh=False)
    await reader.finish_run("finished")
    done = asyncio.Event()

    async def follow() -> None:
        position = 0
        while True:
            last_round = done.is_set()
            page = await reader.items_after(position, 1000)
            seen.extend(data for _, data in page)
            position = page[-1][0] if page else position
            if last_round:
                return

    try:
        following = asyncio.create_task(follow())
        await asyncio.gather(writer(pg_url, "a", written), writer(pg_url, "b", written))
        done.set()
        await following
    finally:
        await reader.close()
    assert len(written) == 2 * ROUNDS * BATCH
    assert sorted(seen) == sorted(item for item in written for _ in range(3))
