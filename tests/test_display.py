"""What a person or a log collector sees of a running `crawl`: the live display in a terminal,
progress lines when stderr is redirected, JSON logs, the summary, and `crawl stats`."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from tests.helpers import CLI, EXIT_OK, crawl, crawl_ok, describe, stats_json
from tests.sites import monitor
from tests.sites.serve import serve_many_in_thread

NAMES = ["a.test", "b.test", "c.test"]
PAGES = 20
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
PROGRESS = re.compile(r"^crawl: \S+ +[\d,]+ pages \([\d.,]+/s now, [\d.,]+/s avg\)", re.M)


@dataclass(frozen=True)
class Hosts:
    port: int
    resolve: list[str]  # --resolve arguments

    def command(self, state: Path, *extra: str) -> list[str]:
        """`crawl site` over a.test, b.test (slow), c.test and d.test, where nothing listens."""
        urls = [f"http://{name}:{self.port}/" for name in [*NAMES, "d.test"]]
        return ["site", *urls, "--state", str(state), "--delay", "0", "--per-host", "2",
                "--workers", "8", "--max-retries", "0", "--ignore-robots", *self.resolve,
                *extra]


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    # b.test, the slowest host, sets a crawl's length: 1.2 s (24 answers, 2 at a time).
    app = monitor.make_app(pages=PAGES, delay=0.03, slow=frozenset({"b.test"}),
                           slow_delay=0.1)
    addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    with serve_many_in_thread(app, addresses) as bases:
        port = URL(bases[0]).port
        assert port is not None
        resolve = [f"--resolve={name}:{addr}" for name, addr in zip(NAMES, addresses,
                                                                      strict=True)]
        # d.test: a loopback address with nothing listening on the port.
        yield Hosts(port, [*resolve, "--resolve=d.test:127.0.0.9"])


def _in_terminal(args: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """Run `crawl ARGS` with a pseudo-terminal (120x40) as its stdin, stdout and stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE",
                        "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([*CLI, *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        else:
            proc.kill()
            raise AssertionError(f"crawl {' '.join(args)} did not end in {timeout}s")
        return proc.wait(timeout=10), b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)


def test_live_display_in_a_terminal(hosts: Hosts, tmp_path: Path) -> None:
    code, raw = _in_terminal(hosts.command(tmp_path / "tty.db"))
    screen = ANSI.sub("", raw)
    assert code == EXIT_OK, screen
    assert "Traceback" not in screen, screen
    assert "\x1b[" in raw, "no terminal control codes: not a live display"
    assert not PROGRESS.search(screen), "log lines instead of the live display"
    for words in ("pages/s now", "done", "queued", "in flight", "failed", "skipped", "items",
                  "200 ", "404 ", "connect 1", "response", "p95", "in use", "idle",
                  "waiting", "opened", "reused", "lookups", "cache hits", "process holds",
                  "busiest hosts", "slowest hosts", "avg time", f"b.test:{hosts.port}"):
        assert words in screen, f"{words!r} missing from the display:\n{screen}"
    # Several frames were drawn while it ran: the elapsed time moves on.
    assert len(set(re.findall(r"running · ([\d.]+m?s)", screen))) >= 2, screen
    # The slowest host is at the top of its table in the last frame.
    last = screen[screen.rindex("slowest hosts"):]
    assert re.search(rf"slowest hosts.*\n.*avg time.*\n\s*b\.test:{hosts.port}\s", last), last
    assert "crawl: finished in" in screen, screen


def test_progress_lines_when_stderr_is_redirected(hosts: Hosts, tmp_path: Path) -> None:
    proc = crawl_ok(*hosts.command(tmp_path / "lines.db", "--progress-every", "0.25"))
    err = proc.stderr
    assert "\x1b[" not in err, "terminal codes in redirected output"
    lines = PROGRESS.findall(err)
    assert len(lines) >= 2, err
    assert re.search(r"sockets \d+ used \d+ idle, dns \d+/\d+ missed", err), err
    # A failure names its URL and why, in words a user can act on.
    dead = f"http://d.test:{hosts.port}/"
    assert re.search(rf"WARNING crawler: failed {re.escape(dead)}: connect: cannot connect "
                     rf"to d\.test:{hosts.port}", err), err
    assert re.search(r"^crawl: finished in .*: [\d,]+ pages \(", err, re.M), err
    assert re.search(r"^crawl: errors this run: connect 1 \(see: crawl stats ", err, re.M), err
    assert re.search(rf"^crawl: slowest host: b\.test:{hosts.port} ", err, re.M), err


def _json_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"stderr line {n} is not JSON: {line!r}") from None
    return records


def test_json_logs(hosts: Hosts, tmp_path: Path) -> None:
    state = tmp_path / "json.db"
    proc = crawl_ok(*hosts.command(state, "--log-format", "json", "--progress-every", "0.25"))
    records = _json_lines(proc.stderr)
    events = [r.get("event") for r in records]
    assert events[0] == "start" and records[0]["state_file"] == str(state)
    progress = [r for r in records if r.get("event") == "progress"]
    assert len(progress) >= 2, events
    assert all(isinstance(r["stats"]["pages"], int) for r in progress)
    assert progress[-1]["stats"]["pool"]["created"] >= 3
    (summary,) = [r for r in records if r.get("event") == "summary"]
    assert summary["status"] == "finished" and summary["level"] == "INFO"
    assert summary["stats"]["statuses"]["200"] == PAGES * 3
    (failed,) = [r for r in records if r.get("url") == f"http://d.test:{hosts.port}/"]
    assert failed["level"] == "WARNING" and failed["reason"].startswith("connect: ")
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)


def test_quiet_shows_no_progress_and_no_summary(hosts: Hosts, tmp_path: Path) -> None:
    proc = crawl_ok(*hosts.command(tmp_path / "quiet.db", "--quiet", "--progress-every",
                                   "0.2"))
    assert not PROGRESS.search(proc.stderr), proc.stderr
    assert "finished in" not in proc.stderr, proc.stderr
    assert "crawl: new crawl" not in proc.stderr, proc.stderr  # nothing but problems
    assert "failed http://d.test" in proc.stderr  # warnings still show


def test_stats_of_a_finished_crawl(hosts: Hosts, tmp_path: Path) -> None:
    state = tmp_path / "done.db"
    crawl_ok(*hosts.command(state, "--quiet"))
    data = stats_json(state)
    gone = monitor.expected_gone(PAGES, 5)
    assert data["statuses"] == {"200": PAGES * 3, "404": gone * 3}
    assert data["failures_by_kind"] == {"connect": 1}
    (run,) = data["runs"]
    assert run["status"] == "finished" and run["ended"] >= run["started"]
    assert run["config"]["workers"] == 8 and run["config"]["per_host"] == 2
    assert run["stats"]["pages"] == (PAGES + gone) * 3
    assert run["stats"]["errors"] == {"connect": 1}
    by_host = {h["host"]: h for h in data["hosts"]}
    assert by_host[f"b.test:{hosts.port}"]["requests"] == PAGES + gone
    assert by_host[f"d.test:{hosts.port}"]["errors"] == 1

    text = crawl_ok("stats", str(state)).stdout
    for words in ("done requests by HTTP status", "failed requests by kind of error",
                  "connect", "runs", "finished", "response times", "connections", "dns",
                  "settings", "workers 8", f"b.test:{hosts.port}", "recent failures"):
        assert words in text, f"{words!r} missing from `crawl stats`:\n{text}"


def test_stats_add_up_over_runs(hosts: Hosts, tmp_path: Path) -> None:
    state = tmp_path / "runs.db"
    first = crawl(*hosts.command(state, "--max-pages", "30", "--quiet"))
    assert first.returncode == EXIT_OK, describe(first)
    crawl_ok(*hosts.command(state, "--quiet"))
    data = stats_json(state)
    assert [r["status"] for r in data["runs"]] == ["page_limit", "finished"]
    pages = sum(r["stats"]["pages"] for r in data["runs"])
    gone = monitor.expected_gone(PAGES, 5)
    assert pages == (PAGES + gone) * 3  # every answer counted once, in one run or the other
    assert sum(h["requests"] for h in data["hosts"]) == pages + 1  # + the dead host's try
