"""A site of many hosts, run in a process of its own, that logs every request to a file.

    python -m tests.sites.manyhosts --hosts 200 --pages 40 --latency 0.02-0.15 --log FILE

serves ``h0.test`` .. ``h199.test`` by ``Host`` header on one port of one loopback address
(crawlers map the names with ``--resolve '*.test:127.0.0.1'``), prints ``READY <base URL>``
on stdout once it listens, and stops cleanly on SIGTERM (or SIGINT).  ``--processes N``
forks N server processes sharing the listening socket, for crawls faster than one serves.
Crawlers in other processes hit it; since it logs what it served, a test checks politeness
over all of them together (:mod:`tests.politeness` reads the log).

Every host has the same shape, with a link graph of its own, the same every run:
``/`` and ``/p/1.html`` .. ``/p/<pages - 1>.html``; page ``i`` links to its tree children
``fanout*i + 1 .. fanout*i + fanout`` (so every page is reachable from ``/`` in a few hops),
to ``--links`` other pages of its host picked by a seeded random, and to ``--cross`` pages of
other hosts (absolute URLs, same port).  Each answer (robots.txt too) comes after a latency
within ``--latency LOW-HIGH``, fixed per page.  robots.txt allows everything; every
``--crawl-delay-every``-th host (h0, h10, ...) also says ``Crawl-delay: --crawl-delay`` when
that is set.  Any other host name answers ``/`` with a page linking to every host's root.

The log (``--log``) starts with one header line, ``# manyhosts {JSON}`` (the site's
parameters and each host's Crawl-delay), then has one line per request::

    <start>\\t<end>\\t<host>\\t<path>\\t<status>

``start`` and ``end`` are ``time.monotonic()`` (CLOCK_MONOTONIC, which every process on the
machine shares) when the handler began and ended; ``host`` is the Host header without port;
``status`` is 0 when no answer was made (e.g. the handler was cancelled).  Lines
``# stall <from>\t<to>`` say when the server's event loop ran late (more than 5 ms): requests
arriving then were stamped late.  A line is written
in a ``finally`` (a request whose client was killed counts too) and flushed at once, so a test
can read the log while crawlers run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from aiohttp import web

from tests.sites.serve import check_loopback

HEADER = "# manyhosts "
STALL = "# stall "
#: A loop that wakes this much later than asked is stalled: requests that arrived meanwhile
#: are stamped when it resumes, so their start times bunch up (see `watch_stalls`).
STALL_THRESHOLD = 0.005
TICK = 0.002
CHECKOUT = Path(__file__).resolve().parent.parent.parent  # where tests/ is
NO_ANSWER = 0


@dataclass(frozen=True, slots=True)
class Spec:
    """What the site serves: the same every run for the same values."""

    hosts: int = 200
    pages: int = 40
    latency: tuple[float, float] = (0.02, 0.15)
    fanout: int = 3
    links: int = 3  # random links to pages of the same host, besides the tree's
    cross: int = 1  # links to pages of other hosts
    crawl_delay: float = 0.0  # 0: no Crawl-delay anywhere
    crawl_delay_every: int = 10
    seed: int = 1

    def __post_init__(self) -> None:
        low, high = self.latency
        if self.hosts < 1 or self.pages < 1 or self.fanout < 1 or self.crawl_delay_every < 1:
            raise ValueError("hosts, pages, fanout and crawl_delay_every must be at least 1")
        if not 0 <= low <= high or self.links < 0 or self.cross < 0 or self.crawl_delay < 0:
            raise ValueError("need 0 <= latency low <= high, and links, cross, crawl_delay >= 0")

    @staticmethod
    def host(i: int) -> str:
        return f"h{i}.test"

    def host_names(self) -> list[str]:
        return [self.host(i) for i in range(self.hosts)]

    def host_index(self, name: str) -> int | None:
        if name.startswith("h") and name.endswith(".test"):
            digits = name[1:-5]
            if digits.isdigit() and digits == str(int(digits)) and int(digits) < self.hosts:
                return int(digits)
        return None

    def crawl_delays(self) -> dict[str, float]:
        """The hosts whose robots.txt has a Crawl-delay, and its value."""
        if not self.crawl_delay:
            return {}
        return {self.host(i): self.crawl_delay
                for i in range(0, self.hosts, self.crawl_delay_every)}

    @staticmethod
    def path(i: int) -> str:
        return "/" if i == 0 else f"/p/{i}.html"

    def page_index(self, path: str) -> int | None:
        if path == "/":
            return 0
        if path.startswith("/p/") and path.endswith(".html"):
            digits = path[3:-5]
            if digits.isdigit() and digits == str(int(digits)) and 0 < int(digits) < self.pages:
                return int(digits)
        return None

    def latency_of(self, host: int, page: int) -> float:
        low, high = self.latency
        return random.Random(f"{self.seed}:{host}:{page}:latency").uniform(low, high)

    def links_of(self, host: int, page: int) -> tuple[list[str], list[tuple[int, str]]]:
        """A page's links: (paths on its own host, (host, path) on other hosts)."""
        rng = random.Random(f"{self.seed}:{host}:{page}")
        own = [self.fanout * page + k for k in range(1, self.fanout + 1)]
        own += [rng.randrange(self.pages) for _ in range(self.links)]
        others = [(rng.randrange(self.hosts), rng.randrange(self.pages))
                  for _ in range(self.cross if self.hosts > 1 else 0)]
        return ([self.path(j) for j in own if j < self.pages],
                [(h, self.path(j)) for h, j in others if h != host])

    def urls(self, port: int | None = None) -> set[str]:
        """Every page's URL, as a crawl of all the hosts stores them (with ``port``) or as
        the request log names them (without)."""
        at = "" if port is None else f":{port}"
        return {f"http://{self.host(h)}{at}{self.path(i)}"
                for h in range(self.hosts) for i in range(self.pages)}

    def robots_txt(self, host: str) -> str:
        delay = self.crawl_delays().get(host)
        return "User-agent: *\nAllow: /\n" + (f"Crawl-delay: {delay}\n" if delay else "")


def _split_host(raw: str) -> tuple[str, str]:
    """(name lower-cased, ":port" or "") of a Host header."""
    name, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit():
        return raw.lower(), ""
    return name.lower(), ":" + port


def _page(spec: Spec, host: int, page: int, port: str) -> str:
    own, others = spec.links_of(host, page)
    name = html.escape(spec.host(host))
    items = [f'<li><a href="{p}">{p}</a></li>' for p in own]
    items += [f'<li><a href="http://{spec.host(h)}{port}{p}">{spec.host(h)}{p}</a></li>'
              for h, p in others]
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{name} page {page}'
            f"</title></head><body><h1>{name} page {page}</h1><ul>{''.join(items)}</ul>"
            "</body></html>")


def _index(spec: Spec, port: str) -> str:
    items = "".join(f'<li><a href="http://{h}{port}/">{h}</a></li>' for h in spec.host_names())
    return ("<!DOCTYPE html><html><head><title>hosts</title></head>"
            f"<body><ul>{items}</ul></body></html>")


class RequestLog:
    """One line per request, appended and flushed at once."""

    def __init__(self, out: TextIO | None) -> None:
        self._out = out

    def header(self, spec: Spec) -> None:
        if self._out is not None:
            header = {**asdict(spec), "crawl_delays": spec.crawl_delays()}
            self._out.write(HEADER + json.dumps(header) + "\n")

    def stall(self, start: float, end: float) -> None:
        if self._out is not None:
            self._out.write(f"{STALL}{start:.6f}\t{end:.6f}\n")

    def write(self, start: float, end: float, host: str, path: str, status: int) -> None:
        if self._out is not None:
            # Control characters would break the line format: a path never has them
            # unescaped, a Host header could.
            host = host.encode("unicode_escape").decode()
            path = path.encode("unicode_escape").decode()
            self._out.write(f"{start:.6f}\t{end:.6f}\t{host}\t{path}\t{status}\n")


async def _answer(spec: Spec, request: web.Request) -> web.Response:
    name, port = _split_host(request.headers.get("Host", ""))
    host = spec.host_index(name)
    if host is None:
        if request.path_qs == "/":
            return web.Response(text=_index(spec, port), content_type="text/html")
        return web.Response(status=404, text="not found")
    page = spec.page_index(request.path) if not request.query_string else None
    await asyncio.sleep(spec.latency_of(host, -1 if page is None else page))
    if page is not None:
        return web.Response(text=_page(spec, host, page, port), content_type="text/html")
    if request.path_qs == "/robots.txt":
        return web.Response(text=spec.robots_txt(name))
    return web.Response(status=404, text="not found")


def make_app(spec: Spec, log: RequestLog) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        start, status = time.monotonic(), NO_ANSWER
        try:
            response = await _answer(spec, request)
            status = response.status
            return response
        finally:
            host = _split_host(request.headers.get("Host", ""))[0]
            log.write(start, time.monotonic(), host, request.path_qs, status)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def watch_stalls(log: RequestLog) -> None:
    """Log when the server's own event loop was late (descheduled by a busy machine, or
    busy): a request's start stamp can be late by as much, so a checker must not blame a
    short gap inside a stall on the crawler without saying so."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(TICK)
        after = time.monotonic()
        if after - before - TICK > STALL_THRESHOLD:
            log.stall(before + TICK, after)


def listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def serve(spec: Spec, sock: socket.socket, log_path: Path | None,
                ready: str | None = None) -> None:
    """Answer on a listening socket (shared with the other server processes, if any) until
    SIGTERM or SIGINT, each request logged to ``log_path`` (opened for appending: every
    line is one write, which O_APPEND keeps whole among processes)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.ExitStack() as files:
        out = None if log_path is None else files.enter_context(
            log_path.open("a", encoding="utf-8", buffering=1))  # line-buffered: flushed
        log = RequestLog(out)
        runner = web.AppRunner(make_app(spec, log), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        stalls = asyncio.create_task(watch_stalls(log))
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            if ready is not None:  # once SIGTERM is handled: a stop right after is clean
                print(ready, flush=True)
            await stop.wait()
        finally:
            stalls.cancel()
            await runner.cleanup()


def run(spec: Spec, address: str, port: int, log_path: Path | None, processes: int) -> None:
    """Bind, write the log's header, fork the other server processes, print READY, serve;
    on SIGTERM stop the others too."""
    sock = listen(address, port)
    if log_path is not None:
        with log_path.open("a", encoding="utf-8") as out:
            RequestLog(out).header(spec)
    children: list[int] = []
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:  # a server process: the same socket, its own event loop
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve(spec, sock, log_path))
            os._exit(0)
        children.append(pid)
    try:
        asyncio.run(serve(spec, sock, log_path, f"READY http://{address}:{sock.getsockname()[1]}"))
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)


def _latency(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    try:
        return float(low), float(high if sep else low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not SECONDS or LOW-HIGH: {text!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.sites.manyhosts",
                                     description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--hosts", type=int, default=200, help="h0.test .. h<N-1>.test (default: 200)")
    add("--pages", type=int, default=40, help="pages a host (default: 40)")
    add("--latency", type=_latency, default=(0.02, 0.15), metavar="LOW-HIGH",
        help="seconds before each answer, fixed per page (default: 0.02-0.15)")
    add("--fanout", type=int, default=3, help="tree children a page links (default: 3)")
    add("--links", type=int, default=3, help="random same-host links a page (default: 3)")
    add("--cross", type=int, default=1, help="links a page to other hosts (default: 1)")
    add("--crawl-delay", type=float, default=0.0, metavar="SECONDS",
        help="Crawl-delay in robots.txt of every --crawl-delay-every-th host (default: none)")
    add("--crawl-delay-every", type=int, default=10, metavar="N", help="(default: 10)")
    add("--seed", type=int, default=1)
    add("--address", default="127.0.0.1", help="loopback address (default: 127.0.0.1)")
    add("--port", type=int, default=0, help="0: any free port (default)")
    add("--log", type=Path, metavar="FILE", help="append a line per request to FILE")
    add("--processes", type=int, default=1, metavar="N",
        help="server processes sharing the port (default: 1), for crawls faster than one "
        "can serve")
    return parser.parse_args(argv)


@dataclass(frozen=True, slots=True)
class Running:
    base: str  # http://ADDRESS:PORT
    pid: int

    @property
    def address(self) -> str:
        return self.base.removeprefix("http://").rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.base.rpartition(":")[2])


@contextlib.contextmanager
def running(options: Sequence[str], log: Path, *, timeout: float = 30.0) -> Iterator[Running]:
    """Run ``python -m tests.sites.manyhosts OPTIONS --log LOG`` until the block ends (then
    SIGTERM it); yields its base URL and pid once it listens."""
    path = os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "tests.sites.manyhosts", *options,
                             "--log", str(log)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": path})  # stderr: ours
    try:
        assert proc.stdout is not None
        ready = select.select([proc.stdout], [], [], timeout)[0]
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            proc.kill()
            raise RuntimeError(f"the many-host site did not start (its stderr is above): "
                               f"{line!r}")
        yield Running(line.split()[1], proc.pid)
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        check_loopback(args.address)
        spec = Spec(args.hosts, args.pages, args.latency, args.fanout, args.links, args.cross,
                    args.crawl_delay, args.crawl_delay_every, args.seed)
    except ValueError as exc:
        sys.exit(f"manyhosts: {exc}")
    if args.processes < 1:
        sys.exit("manyhosts: --processes must be at least 1")
    run(spec, args.address, args.port, args.log, args.processes)


if __name__ == "__main__":
    main()
