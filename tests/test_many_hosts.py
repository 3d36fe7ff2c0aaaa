"""A crawl over more than 1,000 hosts keeps its open sockets bounded.

aiohttp's `limit` counts connections in use, not idle keep-alive ones: without care, a crawl
of many hosts holds an idle socket per host until `keepalive_timeout`. 1,200 host names are
mapped to one loopback server (each name is its own connection pool in aiohttp); the crawl
runs in a subprocess whose open sockets the test samples from /proc while it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from aiohttp import web

from tests.helpers import export_items
from tests.sites.serve import serve_in_thread

HOSTS = 1200
WORKERS = 32


def _app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/":
            return web.Response(text="<title>home</title><a href='/p'>p</a>",
                                content_type="text/html")
        if request.path == "/p":
            return web.Response(text="<title>p</title>", content_type="text/html")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def _sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue  # closed while we looked
    return count


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _sample(proc: subprocess.Popen[str], peaks: list[int], rss: list[float]) -> None:
    while proc.poll() is None:
        try:
            peaks.append(_sockets(proc.pid))
            rss.append(_rss_mb(proc.pid))
        except OSError:
            break
        time.sleep(0.02)


def test_open_sockets_stay_bounded_over_1200_hosts(tmp_path: Path) -> None:
    with serve_in_thread(_app(), host="127.0.0.2") as base:
        port = base.rsplit(":", 1)[1]
        spider = tmp_path / "many.py"
        spider.write_text(textwrap.dedent(f"""
            from crawler import Spider

            class Many(Spider):
                name = "many"
                allowed_hosts = ["test"]
                start_urls = [f"http://h{{i:04d}}.test:{port}/" for i in range({HOSTS})]

                async def parse(self, response):
                    yield {{"url": response.url}}
                    for request in response.follow_all():
                        yield request
        """))
        state = tmp_path / "many.db"
        proc = subprocess.Popen(
            [sys.executable, "-m", "crawler.cli", "run", str(spider), "--state", str(state),
             "--workers", str(WORKERS), "--per-host", "2", "--delay", "0", "--quiet",
             "--resolve", "*.test:127.0.0.2"],
            stderr=subprocess.PIPE, text=True)
        peaks: list[int] = []
        rss: list[float] = []
        sampler = threading.Thread(target=_sample, args=(proc, peaks, rss))
        sampler.start()
        _, stderr = proc.communicate(timeout=180)
        sampler.join()
    assert proc.returncode == 0, stderr
    items = export_items(state)
    assert len(items) == 2 * HOSTS
    assert len({i["url"] for i in items}) == 2 * HOSTS
    # Sockets in use are capped by --workers. An idle keep-alive socket is only kept for a
    # host with requests in the in-memory window (max(8 x workers, 256) leases) and is
    # closed with the host's last one. Without that, one per host piles up (1,202 seen).
    window = max(8 * WORKERS, 256)
    assert len(peaks) > 10, "the crawl ended before it could be observed"
    assert max(peaks) <= window + WORKERS + 16, f"peak {max(peaks)} sockets, {HOSTS} hosts"
    # Per-host state (politeness slots, robots.txt policies, DNS cache) stays small.
    assert max(rss) < 150, f"peak RSS {max(rss):.0f} MB over {HOSTS} hosts"
