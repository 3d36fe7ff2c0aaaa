"""Benchmark: how long a crawl with a big queue takes to start again.

    python bench/resume_bench.py --queued 1000000

Builds a state file holding N queued URLs (through the Store interface, as a crawl would),
then, in a fresh process, times what a resumed crawl does before its first fetch: open
the file (checks, lock, WAL), open the crawl (reclaim leases, count), claim the first batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import NewRequest
from storage.sqlite import SQLiteStore

BATCH = 50_000


async def build(path: Path, queued: int) -> None:
    store = await SQLiteStore.open(path)
    try:
        await store.open_crawl("site", "{}", fresh=False)
        for start in range(0, queued, BATCH):
            await store.add([NewRequest(f"http://bench.test/p/{i}", depth=1)
                             for i in range(start, min(queued, start + BATCH))])
        await store.claim(1000, time.time())  # leased when the crawl "died"
    finally:
        await store.close()


async def resume(path: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    store = await SQLiteStore.open(path)
    t1 = time.perf_counter()
    info = await store.open_crawl("site", "{}", fresh=False)
    t2 = time.perf_counter()
    leases = await store.claim(256, time.time())
    t3 = time.perf_counter()
    await store.close()
    assert leases and info.counts.queued >= 1_000
    return {"open": t1 - t0, "open_crawl": t2 - t1, "first_claim": t3 - t2, "total": t3 - t0,
            "queued": info.counts.queued, "reclaimed": info.reclaimed}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--queued", type=int, default=1_000_000)
    parser.add_argument("--resume", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.resume:
        print(json.dumps(asyncio.run(resume(args.resume))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.crawl.db"
        t = time.perf_counter()
        asyncio.run(build(path, args.queued))
        size = path.stat().st_size
        print(f"built {args.queued:,} queued URLs in {time.perf_counter() - t:.1f} s "
              f"({size / 1e6:.0f} MB)")
        out = subprocess.run([sys.executable, __file__, "--resume", str(path)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out)
        print(f"resume: open {r['open']:.3f} s, open_crawl {r['open_crawl']:.3f} s "
              f"({r['reclaimed']:,.0f} leases reclaimed, {r['queued']:,.0f} queued), "
              f"first claim {r['first_claim']:.3f} s; total {r['total']:.3f} s")


if __name__ == "__main__":
    main()
