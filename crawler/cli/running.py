"""Running a crawl in this process: the event loop, the state file, Ctrl-C, and what the
person watching sees while it runs (the live display on a terminal, progress lines
elsewhere)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from rich.console import Console

from crawler import api, feeds
from crawler.cli.exits import EXIT_INTERRUPTED
from crawler.config import CrawlConfig
from crawler.engine.crawler import Crawler, CrawlResult
from crawler.engine.state import open_state
from crawler.model.spider import Spider
from crawler.observe import display, logs
from storage import RunInfo, shown

T = TypeVar("T")

status_log = logging.getLogger(logs.STATUS)


def run(coro: Coroutine[Any, Any, T], event_loop: str) -> T:
    factory, _ = loop_factory(event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def loop_factory(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """The event loop's factory (as the Python API chooses it) and its name."""
    factory = api.loop_factory(choice)
    return factory, "asyncio" if factory is None else "uvloop"


async def run_crawl(spider: Spider, config: CrawlConfig, state: str,
                    args: argparse.Namespace) -> CrawlResult:
    feeds.check(config)  # before the state file is made
    store = await open_state(state)
    try:
        crawler = Crawler(spider, store, config, fresh=args.fresh,
                          retry_failed=args.retry_failed,
                          on_start=lambda info: _announce(info, spider.name, shown(state)))
        _install_signal_handlers(crawler)
        reporter = _reporter(crawler, args)
        try:
            return await crawler.run()
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
    finally:
        await store.close()


def _reporter(crawler: Crawler, args: argparse.Namespace) -> asyncio.Task[None] | None:
    """The live display on a terminal; progress log lines anywhere else."""
    if args.quiet:
        return None
    console = Console(stderr=True)
    if console.is_terminal and args.log_format == "text":
        return asyncio.create_task(display.live(
            lambda: crawler.snapshot(process_sockets=True), console))
    return asyncio.create_task(display.log_lines(crawler.snapshot, args.progress_every))


def _install_signal_handlers(crawler: Crawler) -> None:
    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            # Everything committed is safe and the rest is refetched: exit at once.
            status_log.warning("stopped at once; the crawl is still resumable")
            if os.isatty(2):
                os.write(2, b"\x1b[?25h")  # the live display hid the cursor
            os._exit(EXIT_INTERRUPTED)
        status_log.info("stopping (finishing requests in flight; Ctrl-C again to quit "
                        "at once)")
        crawler.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def _announce(info: RunInfo, name: str, state: str) -> None:
    c = info.counts
    if not info.resumed:
        status_log.info("new crawl '%s' in %s", name, state,
                        extra={"event": "start", "state_file": state})
        return
    reclaimed = (f" ({info.reclaimed:,} unfinished requests of a stopped run put back in the "
                 "queue)" if info.reclaimed else "")
    status_log.info("resuming '%s' from %s: %s done, %s queued, %s failed%s", name, state,
                    f"{c.done:,}", f"{c.queued:,}", f"{c.failed:,}", reclaimed,
                    extra={"event": "resume", "state_file": state, "done": c.done,
                           "queued": c.queued, "failed": c.failed,
                           "reclaimed": info.reclaimed})

