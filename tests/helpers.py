"""Shared test utilities: the `crawl` command as a subprocess, slowed-down test sites, and
read-only looks into state files.

Subprocesses run as ``[sys.executable, "-m", "crawler.cli", ...]`` (no console script
needed), always with a timeout, with stderr captured for assertion messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.sites import generated
from tests.sites.generated import expected_pages
from tests.sites.serve import serve_in_thread

CLI = (sys.executable, "-m", "crawler.cli")
#: Seconds any one `crawl` subprocess may take before a test gives up on it.
DEFAULT_TIMEOUT = 120.0
#: The line a crawl prints on stderr once it has opened its state file (new or resumed).
STARTED = re.compile(r"^crawl: (new crawl|resuming) ")

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Request states as stored in the `requests` table (storage.base.RequestState).
QUEUED, LEASED, DONE, FAILED = 0, 1, 2, 3


# -- running `crawl` -------------------------------------------------------------------------


def crawl(*args: str, timeout: float = DEFAULT_TIMEOUT,
          cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `crawl ARGS...` to the end; stdout and stderr captured as text."""
    try:
        return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                              cwd=cwd, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"crawl {' '.join(args)} did not end within {timeout}s; stderr:\n"
            f"{_text(exc.stderr)}"
        ) from None


def crawl_ok(*args: str, timeout: float = DEFAULT_TIMEOUT,
             cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `crawl ARGS...` and assert it exits 0."""
    proc = crawl(*args, timeout=timeout, cwd=cwd)
    assert proc.returncode == EXIT_OK, describe(proc)
    return proc


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    cmd = " ".join(str(a) for a in proc.args[len(CLI):])
    return f"`crawl {cmd}` exited {proc.returncode}; stderr:\n{proc.stderr}"


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class CrawlProcess:
    """A `crawl` subprocess running in the background; its stderr is collected by a thread.

    Use as a context manager: on exit the process is killed if it still runs.
    """

    def __init__(self, *args: str, cwd: str | Path | None = None) -> None:
        self.args = args
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        # --log-level INFO: the line that says the crawl has started shows even with --quiet.
        self.proc = subprocess.Popen(
            [*CLI, *args, "--log-level", "INFO"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd,
        )
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"stderr-{self.proc.pid}")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def wait_for_line(self, pattern: re.Pattern[str] | str, timeout: float = 30.0) -> str:
        """Wait until stderr has a line matching `pattern`; return it."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(left)
        raise AssertionError(
            f"`crawl {' '.join(self.args)}` printed no line matching {regex.pattern!r} "
            f"(exit code {self.proc.poll()}); stderr:\n{self.stderr}"
        )

    def wait_started(self, timeout: float = 30.0) -> None:
        self.wait_for_line(STARTED, timeout)

    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the exit code (negative: killed by that signal); fail after `timeout`."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"`crawl {' '.join(self.args)}` did not exit within {timeout}s; stderr:\n"
                f"{self.stderr}"
            ) from None
        self._reader.join(10)
        return code

    def __enter__(self) -> CrawlProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


# -- reading a crawl through the CLI ---------------------------------------------------------


def export_items(state: str | Path) -> list[dict[str, Any]]:
    """`crawl export STATE` (JSON Lines) parsed; asserts exit 0 and valid JSON on every line."""
    proc = crawl_ok("export", str(state))
    items = []
    for n, line in enumerate(proc.stdout.splitlines(), 1):
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"export line {n} is not JSON ({exc}): {line!r}") from None
    return items


def stats_json(state: str | Path) -> dict[str, Any]:
    """`crawl stats STATE --json` parsed; asserts exit 0 and valid JSON."""
    proc = crawl_ok("stats", str(state), "--json")
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stats --json printed invalid JSON ({exc}):\n{proc.stdout}") \
            from None
    return data


# -- items versus the generated site's model -------------------------------------------------


def items_by_url(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Items keyed by URL; asserts that no URL appears twice."""
    by_url: dict[str, dict[str, Any]] = {}
    twice: list[str] = []
    for item in items:
        if item["url"] in by_url:
            twice.append(item["url"])
        by_url[item["url"]] = item
    assert not twice, f"{len(twice)} URL(s) stored more than once, e.g. {twice[:5]}"
    return by_url


def assert_items_match_site(items: list[dict[str, Any]], base: str, *, pages: int = 2200,
                            seed: int = 1) -> None:
    """Exactly one item per page of the generated site, with its title and link count."""
    by_url = items_by_url(items)
    expected = expected_pages(base, pages, seed)
    missing = sorted(set(expected) - set(by_url))
    extra = sorted(set(by_url) - set(expected))
    assert not missing and not extra, (
        f"{len(missing)} page(s) missing, e.g. {missing[:5]}; "
        f"{len(extra)} unexpected, e.g. {extra[:5]}"
    )
    wrong = [
        (url, item, expected[url])
        for url, item in by_url.items()
        if (item["status"], item["title"], item["links"])
        != (200, expected[url].title, expected[url].links)
    ]
    assert not wrong, f"{len(wrong)} item(s) differ from the site, e.g. {wrong[:3]}"
    for item in items:
        assert set(item) == {"url", "status", "title", "links"}, item


def item_set(items: Iterable[dict[str, Any]]) -> set[str]:
    """Items as a set of canonical JSON strings, for comparing two crawls exactly."""
    return {json.dumps(item, sort_keys=True, ensure_ascii=False) for item in items}


# -- the state file, read directly (read-only) -----------------------------------------------


@dataclass(frozen=True)
class StateCounts:
    queued: int = 0
    leased: int = 0
    done: int = 0
    failed: int = 0
    items: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def complete(self) -> bool:
        return self.queued + self.leased == 0


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def state_counts(path: str | Path) -> StateCounts:
    conn = _connect_ro(Path(path))
    try:
        by_state = dict(conn.execute("SELECT state, count(*) FROM requests GROUP BY state"))
        items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    finally:
        conn.close()
    return StateCounts(by_state.get(QUEUED, 0), by_state.get(LEASED, 0),
                       by_state.get(DONE, 0), by_state.get(FAILED, 0), items)


def urls_in_state(path: str | Path, state: int) -> set[str]:
    conn = _connect_ro(Path(path))
    try:
        return {url for (url,) in conn.execute("SELECT url FROM requests WHERE state = ?",
                                               (state,))}
    finally:
        conn.close()


def duplicate_items(path: str | Path) -> tuple[list[tuple[str, int]], list[tuple[int, int]]]:
    """(URLs stored in more than one item, request ids with more than one item)."""
    conn = _connect_ro(Path(path))
    try:
        urls = conn.execute(
            "SELECT json_extract(data, '$.url') AS u, count(*) FROM items"
            " GROUP BY u HAVING count(*) > 1 LIMIT 10"
        ).fetchall()
        requests = conn.execute(
            "SELECT request, count(*) FROM items GROUP BY request HAVING count(*) > 1 LIMIT 10"
        ).fetchall()
    finally:
        conn.close()
    return urls, requests


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def side_files(path: str | Path) -> list[Path]:
    """SQLite's `-wal`, `-shm` and `-journal` files next to `path` that exist."""
    p = Path(path)
    return [q for q in (p.with_name(p.name + s) for s in ("-wal", "-shm", "-journal"))
            if q.exists()]


# -- test sites -------------------------------------------------------------------------------


@dataclass
class Throttle:
    """Per-request sleep added in front of an app's handlers; change `delay` any time.

    The counters are ints written only by the server's thread: safe to read from tests.
    """

    delay: float = 0.0
    started: int = 0  # requests that reached the middleware
    in_flight: int = 0  # requests whose handler (sleep included) has not returned yet

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Wait until the server has no request in progress (e.g. of a killed client)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self.in_flight, f"server still busy with {self.in_flight} request(s)"


def throttle(app: web.Application, delay: float = 0.0) -> Throttle:
    """Slow `app` down by `delay` seconds per request (before its own handler runs)."""
    state = Throttle(delay)

    @web.middleware
    async def slow(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
        state.started += 1
        state.in_flight += 1
        try:
            if state.delay > 0:
                await asyncio.sleep(state.delay)
            return await handler(request)
        finally:
            state.in_flight -= 1

    app.middlewares.append(slow)
    return state


def snapshot(counter: Counter[str]) -> Counter[str]:
    """A copy of a Counter that another thread (a test server) may be updating."""
    while True:
        try:
            return Counter(dict(counter))
        except RuntimeError:  # changed size during iteration: try again
            continue


@dataclass
class Site:
    """The generated site served in a thread, slowed down at will by its throttle."""

    base: str
    app: web.Application
    throttle: Throttle

    @property
    def start(self) -> str:
        return self.base + "/"

    def requests(self) -> Counter[str]:
        """Requests served so far, by path; call only while no crawl is running."""
        self.throttle.wait_idle()
        return snapshot(self.app[generated.REQUESTS])

    def path(self, url: str) -> str:
        assert url.startswith(self.base + "/"), url
        return url[len(self.base):]


@contextmanager
def throttled_site(pages: int = 2200) -> Iterator[Site]:
    app = generated.make_app(pages)
    slow = throttle(app)
    with serve_in_thread(app) as base:
        yield Site(base, app, slow)


def unthrottled(site: Site) -> Iterator[None]:
    """Body of an autouse fixture: every test starts and ends with the site at full speed."""
    site.throttle.delay = 0.0
    yield
    site.throttle.delay = 0.0
    site.throttle.wait_idle()


def site_command(site: Site, state: Path, *extra: str) -> list[str]:
    """`crawl site` arguments for a whole generated site, no delay, quiet."""
    return ["site", site.start, "--state", str(state), "--delay", "0", "--quiet", *extra]
