"""The floor under the durable frontier: SQLite inserting discovered URLs, nothing else.

    python bench/sqlite_inserts.py [--pages 20000] [--per-commit 12800]

Inserts 50 new URLs a page, as the endless benchmark site discovers them, into the state
file's own `requests` table (its schema and insert statement, BLAKE2b fingerprints), in
transactions of `--per-commit` rows, with the store's pragmas. Prints the CPU a page spent
inside SQLite's executemany and commit, and the same without the fingerprint index (the
cost of dedup) and in memory (the cost of the file).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.sqlite.schema import SCHEMA
from storage.sqlite.writes import INSERT_REQUEST, fingerprint

LINKS = 50


def run(variant: str, pages: int, per_commit: int, folder: Path) -> float:
    schema, insert = SCHEMA, INSERT_REQUEST
    if variant == "no fingerprint index":
        schema = schema.replace("fp INTEGER NOT NULL UNIQUE", "fp INTEGER NOT NULL")
        insert = insert.replace(" ON CONFLICT (fp) DO NOTHING", "")
    path = ":memory:" if variant == "in memory" else str(folder / f"{len(variant)}.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "cache_size = -8192"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(schema)
    spent, batch = 0.0, []
    for page in range(pages):
        for k in range(LINKS):
            url = f"http://127.0.0.1:8000/p/{page * LINKS + k + 1}"
            batch.append((fingerprint(url), url, 0, 1, None, None, 0, page))
        if len(batch) >= per_commit or page == pages - 1:
            start = time.process_time()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, batch)
            conn.execute("COMMIT")
            spent += time.process_time() - start
            batch = []
    conn.close()
    return 1000 * spent / pages


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--per-commit", type=int, default=12_800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("as the store", "no fingerprint index", "in memory"):
            ms = run(variant, args.pages, args.per_commit, Path(tmp))
            print(f"{variant:22s} {ms:.3f} CPU-ms a page ({LINKS} rows)", flush=True)


if __name__ == "__main__":
    main()
