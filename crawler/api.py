"""Running crawls from Python: `crawl` in a script, `crawl_async` inside a running event loop,
and `iter_items` to read a crawl's items (also while it runs).

    from crawler import crawl, iter_items

    result = crawl(Quotes, state="quotes.db", max_pages=100)

The settings are `CrawlConfig`'s fields as keyword arguments, with the precedence of the
command line: the defaults, then the spider's class attributes, then the arguments.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any

try:
    import uvloop
except ImportError:  # optional: it is not built for Windows or PyPy
    uvloop = None  # type: ignore[assignment]

from crawler import feeds
from crawler.config import layered
from crawler.engine.crawler import Crawler, CrawlResult
from crawler.engine.state import open_state
from crawler.errors import ConfigError, CrawlError, SpiderError
from crawler.model.spider import Spider

LOOPS = ("auto", "uvloop", "asyncio")
State = str | os.PathLike[str]


def crawl(spider: type[Spider] | Spider, *, state: State | None = None,
          start_urls: Sequence[str] | None = None, fresh: bool = False,
          retry_failed: bool = False, event_loop: str = "auto",
          **settings: Any) -> CrawlResult:
    """Run a crawl to its end in a new event loop (uvloop's when installed, as the command
    line does; `event_loop="asyncio"` for asyncio's) and return how it ended.

    `state`: the state file, resumed if it holds this spider's crawl (default: NAME.crawl.db
    in the current folder); `fresh`: start it over; `retry_failed`: queue its failed requests
    again; `start_urls`: instead of the spider's. Any other keyword is a setting
    (`max_pages=100`, `delay=0.5`; `help(crawler.CrawlConfig)` lists them); an unknown one
    is a ConfigError. Ctrl-C stops the crawl as the command line does (requests in flight
    finish; result.status is "interrupted"; run it again to resume); a second one stops it
    at once. Inside a running event loop, use `await crawl_async(...)`."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise CrawlError("crawl() runs an event loop of its own and cannot run inside one; "
                         "there, use `await crawl_async(...)`")
    factory = loop_factory(event_loop, option="event_loop=")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_crawl(spider, state, start_urls, settings, fresh=fresh,
                                 retry_failed=retry_failed, signals=True))


async def crawl_async(spider: type[Spider] | Spider, *, state: State | None = None,
                      start_urls: Sequence[str] | None = None, fresh: bool = False,
                      retry_failed: bool = False, **settings: Any) -> CrawlResult:
    """`crawl`, in the running event loop: the same arguments (but `event_loop`), and no
    signal handlers (stopping is the caller's: cancel the task, and the crawl resumes)."""
    return await _crawl(spider, state, start_urls, settings, fresh=fresh,
                        retry_failed=retry_failed, signals=False)


async def iter_items(state: State) -> AsyncIterator[Any]:
    """The items of a state file as Python values (dicts, as stored), in the order they were
    committed. Works while a crawl runs on the file: it reads what is committed so far."""
    store = await open_state(os.fspath(state), readonly=True)
    try:
        async with aclosing(store.items()) as texts:
            async for text in texts:
                yield json.loads(text)
    finally:
        await store.close()


async def _crawl(spider: type[Spider] | Spider, state: State | None,
                 start_urls: Sequence[str] | None, settings: dict[str, Any], *,
                 fresh: bool, retry_failed: bool, signals: bool) -> CrawlResult:
    made = _spider(spider, start_urls)
    config = layered(made, settings)  # before the file is opened: a bad setting leaves it
    feeds.check(config)  # an output that cannot be written, too
    default = f"{made.name}.crawl.db"
    store = await open_state(os.fspath(state) if state is not None else default,
                             crawl=default)
    try:
        crawler = Crawler(made, store, config, fresh=fresh, retry_failed=retry_failed)
        stop = _stop_on_signals(crawler) if signals else None
        try:
            return await crawler.run()
        finally:
            if stop is not None:
                stop()
    finally:
        await store.close()


def _spider(spider: type[Spider] | Spider, start_urls: Sequence[str] | None) -> Spider:
    if isinstance(spider, Spider):
        if start_urls is not None:
            raise ConfigError("start_urls= goes with a spider class; this spider instance "
                              "has its own start_urls")
        made = spider
    elif isinstance(spider, type) and issubclass(spider, Spider):
        try:
            made = spider(start_urls=start_urls)
        except SpiderError:  # says what is wrong already
            raise
        except Exception as exc:
            raise SpiderError(f"cannot create {spider.__name__}(): {type(exc).__name__}: "
                              f"{exc}") from exc
    else:
        raise SpiderError(f"crawl() takes a Spider subclass (or an instance of one), not "
                          f"{spider!r:.80}")
    if not made.name:
        raise SpiderError(f"{type(made).__name__} has no name; set `name = \"...\"`")
    return made


def _stop_on_signals(crawler: Crawler) -> Callable[[], None] | None:
    """Ctrl-C (and SIGTERM) stop the crawl gracefully; a second press is Python's own
    KeyboardInterrupt. Returns what puts the handlers back; None where signals can't be
    handled (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGINT, signal.SIGTERM)
    # The script's own handlers (a service's SIGTERM) come back after the crawl: asyncio
    # would leave SIGTERM at its default, which kills the script.
    saved = {sig: signal.getsignal(sig) for sig in sigs}

    def stop() -> None:
        for sig in sigs:
            loop.remove_signal_handler(sig)  # the next press: the default, at once
        crawler.stop()

    try:
        for sig in sigs:
            loop.add_signal_handler(sig, stop)
    except (NotImplementedError, RuntimeError):  # a loop without signal support
        return None

    def restore() -> None:
        for sig in sigs:
            loop.remove_signal_handler(sig)
            if saved[sig] is not None:
                signal.signal(sig, saved[sig])
    return restore


def loop_factory(choice: str, *, option: str = "--event-loop "
                 ) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's libuv loop when asked or when installed: the same code, less CPU a request.
    None is asyncio's own."""
    if choice not in LOOPS:
        raise ConfigError(f"{option}{choice!r}: the event loop is one of {', '.join(LOOPS)}")
    if choice == "asyncio":
        return None
    if uvloop is None:
        if choice == "uvloop":
            raise ConfigError(f"{option}uvloop: uvloop is not installed (pip install uvloop)")
        return None
    return uvloop.new_event_loop
