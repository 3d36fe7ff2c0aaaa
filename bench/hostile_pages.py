"""Benchmark: what one hostile page costs the crawler, in memory, disk and CPU.

    python bench/hostile_pages.py [--only many long same deep]

Each case is a `crawl site` subprocess against a local site (served by another process);
peak RSS and CPU are the child's own, read from the kernel when it exits (wait4):
- many: one 16 MB page of 1,000,000 distinct links;
- long: pages of 8,000 distinct 2,000-character URLs each, 80 pages (--max-pages 80);
- same: one 10 MB line of 500,000 links to one URL;
- deep: 2.2 MB of 200,000 nested <div>s (and other shapes with --only deep).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from bench.common import site_process

ROOT = Path(__file__).resolve().parent.parent
LONG_LINKS = 8_000
LONG_SIZE = 2_000


def _many() -> bytes:
    return ("<html><head><title>many</title></head><body>"
            + "".join(f"<a href=/{n:06d}>" for n in range(1_000_000))).encode()


def _same() -> bytes:
    return ("<html><head><title>same</title></head><body>"
            + '<a href="/one">1</a>' * 500_000 + "</body></html>").encode()


def _long(page: str) -> bytes:
    # Distinct on every page: each link names its page and its number, padded to 2,000.
    links = (f'<a href="/long/{page}-{n}-{"x" * LONG_SIZE}"></a>'[: LONG_SIZE + 15] + '"></a>'
             for n in range(LONG_LINKS))
    return ("<html><head><title>long</title></head><body>" + "".join(links)).encode()


def _deep(depth: int, tag: str = "div") -> bytes:
    return (f"<html><head><title>deep</title></head><body>{f'<{tag}>' * depth}"
            f'<a href="/x">x</a>').encode()


def make_app() -> web.Application:
    cache: dict[str, bytes] = {}

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        if path in {"/many", "/same"}:
            if path not in cache:
                cache[path] = _many() if path == "/many" else _same()
            body = cache[path]
        elif path.startswith("/long/"):
            body = _long(str(hash(path) & 0xFFFFFFFF))
        elif path.startswith("/deep/"):
            depth, _, tag = path[6:].partition("/")
            body = _deep(int(depth), tag or "div")
        else:
            body = b"<html><head><title>small</title></head><body>small</body></html>"
        return web.Response(body=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def crawl(url: str, state: Path, *extra: str) -> dict[str, object]:
    """One `crawl site` subprocess; its peak RSS, CPU and wall time, and the state file."""
    cmd = [sys.executable, "-m", "crawler.cli", "site", url, "--state", str(state), "--quiet",
           "--delay", "0", "--ignore-robots", *extra]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"crawl failed: {err}")
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT count(*) FROM requests").fetchone()[0]
        counters = dict(db.execute("SELECT name, value FROM counters"))
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024), "cpu_s": round(
        usage.ru_utime + usage.ru_stime, 2), "wall_s": round(wall, 2), "rows": rows,
        "state_mb": round(state.stat().st_size / 2**20, 1),
        "skipped": {k: v for k, v in counters.items() if k.startswith("skipped_")}}


CASES = {
    "many": ("/many", ["--max-pages", "1"]),
    "long": ("/long/0", ["--max-pages", "80", "--workers", "4", "--per-host", "4"]),
    "same": ("/same", ["--max-pages", "1"]),
    "deep": ("/deep/200000", ["--max-pages", "1"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=[*CASES, "shapes"], default=list(CASES))
    parser.add_argument("--port", type=int, default=8793)
    args = parser.parse_args()
    with site_process(make_app, args.port) as base, tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            if name == "shapes":
                for path in ("/deep/100000/div", "/deep/400000/div", "/deep/3000000/div",
                             "/deep/3000000/span", "/deep/2000000/ul", "/deep/3000000/b"):
                    state = Path(tmp) / f"{path.replace('/', '_')}.db"
                    print(path, json.dumps(crawl(base + path, state, "--max-pages", "1")),
                          flush=True)
                continue
            path, extra = CASES[name]
            result = crawl(base + path, Path(tmp) / f"{name}.db", *extra)
            print(name, json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
