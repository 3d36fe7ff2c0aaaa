"""`crawl bench` and its site: a real crawl of a local benchmark site, measured."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.helpers import crawl, crawl_ok, describe, stats_json


def test_bench_on_the_endless_site(tmp_path: Path) -> None:
    state = tmp_path / "bench.db"
    proc = crawl_ok("bench", "--pages", "300", "--json", "--quiet", "--state", str(state))
    figures = json.loads(proc.stdout)
    assert figures["requests"] == 300 and figures["items"] == 300
    # Every page links to 50 pages never seen: the queue holds them all.
    assert figures["urls"] > 300 * 40
    assert figures["cpu"] > 0 and figures["wall"] > 0 and figures["peak_rss"] > 10 * 2**20
    assert figures["state_bytes"] == sum(p.stat().st_size
                                         for p in tmp_path.glob("bench.db*"))
    assert figures["event_loop"] in ("uvloop", "asyncio")
    stats = stats_json(state)  # the state file is a real crawl: robots.txt obeyed, all stored
    assert stats["requests"]["done"] == 300
    assert stats["statuses"] == {"200": 300}


def test_bench_on_a_finite_site_ends_when_the_site_does(tmp_path: Path) -> None:
    proc = crawl("bench", "--site-pages", "40", "--links", "8", "--pages", "1000",
                 "--event-loop", "asyncio")
    assert proc.returncode == 0, describe(proc)
    assert "asyncio event loop" in proc.stdout
    pages = int(proc.stdout.split()[1].replace(",", ""))
    # "/" and /p/0../p/39, those reachable from "/" (the links are random).
    assert 30 <= pages <= 41, proc.stdout


def test_bench_refuses_nonsense() -> None:
    proc = crawl("bench", "--pages", "0")
    assert proc.returncode == 2 and "--pages" in proc.stderr, describe(proc)


def test_benchsite_serves_pages_and_robots() -> None:
    server = subprocess.Popen([sys.executable, "-m", "benchsite", "--pages", "10",
                               "--links", "3", "--size", "2000"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        assert ready[0] == "READY" and ready[1].startswith("http://127.0.0.1:")
        base = ready[1]
        with urllib.request.urlopen(base + "/p/3") as resp:
            page = resp.read().decode()
        assert "<title>Page 3</title>" in page and page.count('<a href="/p/') == 3
        assert 1900 <= len(page) <= 2100
        with urllib.request.urlopen(base + "/robots.txt") as resp:
            assert "Disallow: /private/" in resp.read().decode()
        try:
            urllib.request.urlopen(base + "/p/10")
            raise AssertionError("page 10 of a 10-page site exists")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    finally:
        server.terminate()
        server.wait()


def test_bench_never_overwrites_an_existing_state_file(tmp_path: Path) -> None:
    state = tmp_path / "precious.db"
    state.write_bytes(b"a crawl someone cares about")
    proc = crawl("bench", "--pages", "10", "--state", str(state))
    assert proc.returncode == 2 and "exists" in proc.stderr, describe(proc)
    assert state.read_bytes() == b"a crawl someone cares about"
