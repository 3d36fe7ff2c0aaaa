"""Run an aiohttp ``web.Application`` on loopback addresses for tests.

Every helper here refuses to bind anything but an IPv4 literal in ``127.0.0.0/8``.

* ``serve(app, host, port)``: async context manager, yields ``"http://127.0.0.1:41234"``.
* ``serve_many(app, hosts, port)``: one runner listening on several loopback addresses,
  by default all on the same port; yields one base URL per host, in order.
* ``serve_in_thread`` / ``serve_many_in_thread``: the same, on a private event loop in a
  daemon thread, for synchronous tests (e.g. ones that start crawler subprocesses).

An ``aiohttp`` application is bound to the first event loop that runs it, so an app served
by ``serve_in_thread`` cannot later be served on another loop (or another thread): build a
fresh app instead.  Within one loop the same app may be served by several ``serve`` calls at
once (e.g. on 127.0.0.2 and 127.0.0.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, TypeVar

from aiohttp import web

__all__ = [
    "check_loopback",
    "serve",
    "serve_in_thread",
    "serve_many",
    "serve_many_in_thread",
]

T = TypeVar("T")

#: Time given to in-flight requests to finish when a server shuts down.
DEFAULT_SHUTDOWN_TIMEOUT = 1.0


def check_loopback(host: str) -> str:
    """Return ``host`` if it is an IPv4 literal in 127.0.0.0/8, else raise ``ValueError``."""
    try:
        addr = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"test servers bind IPv4 loopback literals only, got {host!r}") from None
    if addr not in ipaddress.IPv4Network("127.0.0.0/8"):
        raise ValueError(f"test servers bind 127.0.0.0/8 only, got {host!r}")
    return host


def _make_runner(app: web.Application, shutdown_timeout: float) -> web.AppRunner:
    # No signal handlers (tests own the process) and no access log (speed, quiet output).
    return web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
    )


def _bound_port(site: web.TCPSite) -> int:
    server: Any = site._server  # asyncio.Server once started
    sockets = getattr(server, "sockets", None)
    if not sockets:
        raise RuntimeError("site is not listening")
    port = sockets[0].getsockname()[1]
    assert isinstance(port, int)
    return port


@asynccontextmanager
async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (0 = any free port); yield ``"http://host:port"``."""
    check_loopback(host)
    runner = _make_runner(app, shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield f"http://{host}:{_bound_port(site)}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve_many(
    app: web.Application,
    hosts: Sequence[str],
    port: int = 0,
    *,
    same_port: bool = True,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    attempts: int = 20,
) -> AsyncIterator[list[str]]:
    """Serve ``app`` on every address in ``hosts`` with one runner.

    With ``same_port`` (the default) every address listens on the same port: ``port`` if
    given, else a free port picked by binding the first host with port 0 (retried if that port
    happens to be taken on another address).  With ``same_port=False`` and ``port=0`` each
    address gets its own free port.  Yields the base URLs in the order of ``hosts``.
    """
    if not hosts:
        raise ValueError("no hosts to serve")
    for host in hosts:
        check_loopback(host)
    runner = _make_runner(app, shutdown_timeout)
    await runner.setup()
    try:
        for attempt in range(attempts):
            urls: list[str] = []
            sites: list[web.TCPSite] = []
            try:
                chosen = port
                for host in hosts:
                    site = web.TCPSite(runner, host, chosen)
                    await site.start()
                    sites.append(site)
                    bound = _bound_port(site)
                    if same_port:
                        chosen = bound
                    urls.append(f"http://{host}:{bound}")
            except OSError as exc:
                for site in sites:
                    await site.stop()
                retry = same_port and port == 0 and exc.errno == errno.EADDRINUSE
                if not retry or attempt == attempts - 1:
                    raise
                continue
            break
        yield urls
    finally:
        await runner.cleanup()


def _run_in_thread(
    factory: Callable[[], AbstractAsyncContextManager[T]],
    name: str,
    start_timeout: float,
    stop_timeout: float,
) -> Iterator[T]:
    """Enter ``factory()`` on a new event loop in a daemon thread; yield its value."""
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with factory() as value:
                state["loop"] = asyncio.get_running_loop()
                state["stop"] = stop
                state["value"] = value
                started.set()
                await stop.wait()
        except BaseException as exc:
            state["error"] = exc
            raise
        finally:
            started.set()

    def run() -> None:
        try:
            with asyncio.Runner() as runner:
                runner.run(main())
        except BaseException as exc:  # reported to the caller through `state`
            state.setdefault("error", exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not started.wait(start_timeout):
        raise TimeoutError(f"{name}: server did not start within {start_timeout}s")
    if "error" in state:
        thread.join(stop_timeout)
        raise RuntimeError(f"{name}: server failed to start") from state["error"]
    try:
        yield state["value"]
    finally:
        loop: asyncio.AbstractEventLoop = state["loop"]
        stop: asyncio.Event = state["stop"]
        with contextlib.suppress(RuntimeError):  # RuntimeError: the loop is already closed
            loop.call_soon_threadsafe(stop.set)
        thread.join(stop_timeout)
        if thread.is_alive():
            raise RuntimeError(f"{name}: server thread did not stop within {stop_timeout}s")


@contextmanager
def serve_in_thread(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    start_timeout: float = 10.0,
) -> Iterator[str]:
    """Like :func:`serve`, but on its own event loop in a daemon thread (sync tests)."""
    check_loopback(host)
    yield from _run_in_thread(
        lambda: serve(app, host, port, shutdown_timeout=shutdown_timeout),
        name=f"test-server-{host}:{port}",
        start_timeout=start_timeout,
        stop_timeout=shutdown_timeout + 10.0,
    )


@contextmanager
def serve_many_in_thread(
    app: web.Application,
    hosts: Sequence[str],
    port: int = 0,
    *,
    same_port: bool = True,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    start_timeout: float = 10.0,
) -> Iterator[list[str]]:
    """Like :func:`serve_many`, but on its own event loop in a daemon thread (sync tests)."""
    for host in hosts:
        check_loopback(host)
    yield from _run_in_thread(
        lambda: serve_many(
            app, hosts, port, same_port=same_port, shutdown_timeout=shutdown_timeout
        ),
        name=f"test-server-{','.join(hosts)}:{port}",
        start_timeout=start_timeout,
        stop_timeout=shutdown_timeout + 10.0,
    )
