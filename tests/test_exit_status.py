"""A crawl that fetched nothing says so with its exit status (issue 10, item 14).

Through the `crawl` command: a port where nothing listens (a socket bound and closed to find
one), and a spider with no start URLs.
"""

from __future__ import annotations

import socket
from pathlib import Path

from crawler.observe.metrics import Metrics
from tests.helpers import EXIT_OK, crawl, describe

EXIT_NOTHING_FETCHED = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def test_a_dead_host_exits_non_zero_and_names_no_slowest_host(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    proc = crawl("site", url, "--state", str(tmp_path / "dead.db"), "--delay", "0",
                 "--max-retries", "1", "--progress-every", "60")
    assert proc.returncode == EXIT_NOTHING_FETCHED, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    assert "slowest host" not in proc.stderr, describe(proc)
    assert "nothing was fetched" in proc.stderr, describe(proc)
    # Running it again (the host still down, the request failed for good) says the same.
    again = crawl("site", url, "--state", str(tmp_path / "dead.db"), "--retry-failed",
                  "--delay", "0", "--max-retries", "0")
    assert again.returncode == EXIT_NOTHING_FETCHED, describe(again)
    # Without --retry-failed there is nothing left to try, and still no page.
    idle = crawl("site", url, "--state", str(tmp_path / "dead.db"), "--delay", "0")
    assert idle.returncode == EXIT_NOTHING_FETCHED, describe(idle)
    assert "--retry-failed" in idle.stderr, describe(idle)


def test_a_spider_without_start_requests_warns_and_exits_non_zero(tmp_path: Path) -> None:
    spider = tmp_path / "empty.py"
    spider.write_text(
        "from crawler import Spider\n\n"
        "class Empty(Spider):\n"
        "    name = 'empty'\n\n"
        "    async def parse(self, response):\n"
        "        yield {}\n"
    )
    proc = crawl("run", str(spider), "--state", str(tmp_path / "empty.db"), "--quiet")
    assert proc.returncode == EXIT_NOTHING_FETCHED, describe(proc)
    assert "no start requests" in proc.stderr, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)


def test_exit_statuses_are_documented() -> None:
    proc = crawl("site", "--help")
    assert proc.returncode == EXIT_OK
    assert f"\n  {EXIT_NOTHING_FETCHED} " in proc.stdout, proc.stdout
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"| {EXIT_NOTHING_FETCHED} | nothing was fetched" in readme


def test_a_host_that_never_answered_is_not_the_slowest() -> None:
    metrics = Metrics()
    metrics.fetch_failed("dead.test:80", "connect", 5.0)
    metrics.answered("live.test:80", 200, 10, 0.2)
    snap = metrics.snapshot(spider="s", state="ended", crawl=None, live_hosts=(), pool=None)
    assert [row.host for row in snap.slowest] == ["live.test:80"]
    assert metrics.hosts["dead.test:80"].errors == 1
