"""The many-host site's own process (tests/sites/manyhosts.py): hosts by Host header, robots.txt
with Crawl-delay on some hosts, a request log readable while it runs (a request whose client
went away included), and a clean stop on SIGTERM."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.politeness import read_log
from tests.sites import manyhosts
from tests.sites.manyhosts import Spec

OPTIONS = ["--hosts", "20", "--pages", "6", "--latency", "0.05-0.05", "--crawl-delay", "0.3",
           "--crawl-delay-every", "5"]


def _get(server: manyhosts.Running, host: str, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(server.address, server.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": f"{host}:{server.port}"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_hosts_pages_robots_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    spec = Spec(hosts=20, pages=6, latency=(0.05, 0.05), crawl_delay=0.3, crawl_delay_every=5)
    with manyhosts.running(OPTIONS, log) as server:
        status, page = _get(server, "h3.test", "/")
        own, others = spec.links_of(3, 0)
        assert status == 200 and "<title>h3.test page 0</title>" in page
        assert all(f'href="{p}"' in page for p in own)
        assert all(f'href="http://h{h}.test:{server.port}{p}"' in page for h, p in others)
        assert _get(server, "h5.test", "/robots.txt") == (
            200, "User-agent: *\nAllow: /\nCrawl-delay: 0.3\n")
        assert _get(server, "h6.test", "/robots.txt") == (200, "User-agent: *\nAllow: /\n")
        assert _get(server, "h3.test", "/p/6.html")[0] == 404  # pages are 0..5
        assert _get(server, "h20.test", "/")[0] == 200  # not a host: the index of all hosts
        assert f'href="http://h19.test:{server.port}/"' in _get(server, "index.test", "/")[1]
        # A client that goes away before the answer is logged too, while the site runs.
        with socket.create_connection((server.address, server.port)) as sock:
            sock.sendall(b"GET /p/2.html HTTP/1.1\r\nHost: h7.test\r\n\r\n")
        deadline = time.monotonic() + 5
        while len(read_log(log).hits) < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        hits = read_log(log).hits
        assert [(h.host, h.path, h.status) for h in hits][:5] == [
            ("h3.test", "/", 200), ("h5.test", "/robots.txt", 200),
            ("h6.test", "/robots.txt", 200), ("h3.test", "/p/6.html", 404),
            ("h20.test", "/", 200)]
        gone = hits[-1]
        assert (gone.host, gone.path) == ("h7.test", "/p/2.html")
        assert 0.05 <= gone.end - gone.start < 1
        assert all(0 < h.start <= h.end <= time.monotonic() for h in hits)  # CLOCK_MONOTONIC
    assert read_log(log).crawl_delays == {"h0.test": 0.3, "h5.test": 0.3, "h10.test": 0.3,
                                          "h15.test": 0.3}
    assert spec.urls(None) >= {"http://h0.test/", "http://h19.test/p/5.html"}
    assert len(spec.urls(80)) == 120


def test_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen([sys.executable, "-m", "tests.sites.manyhosts", "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": root})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("READY http://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, errors
    assert errors == ""
    assert read_log(log).header["hosts"] == 200


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rpartition(")")[2].split()[1]) == pid:
                        found.add(int(entry))
            except OSError:
                continue
    return found


def test_several_server_processes_share_the_port_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    with manyhosts.running(["--processes", "3", "--latency", "0"], log) as server:
        children = _children(server.pid)
        assert len(children) == 2
        for i in range(30):
            assert _get(server, f"h{i}.test", "/")[0] == 200
        deadline = time.monotonic() + 5
        while len(read_log(log).hits) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
    parsed = read_log(log)
    assert sorted(h.host for h in parsed.hits) == sorted(f"h{i}.test" for i in range(30))
    assert parsed.header["hosts"] == 200
    assert log.read_text().count("# manyhosts ") == 1
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)  # stopped, reaped
