"""One fetch through the transport, guarded by the crawl's scope and counted in the metrics;
and the moment a request popped from the frontier goes out, which starts its host's clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yarl import URL

from crawler.engine.cookies import CookieKeeper
from crawler.engine.loopwatch import LoopWatch
from crawler.errors import FetchError, OutOfScope
from crawler.http.transport import FetchResult, OnSent, Sending, Transport, WantBody
from crawler.observe.metrics import Metrics
from crawler.policy.frontier import Frontier
from crawler.urls import canon as urls
from crawler.urls.scope import Scope


class HostSend:
    """One request popped for `host`, as the transport's `on_sent`: tells the frontier when it
    went out (the host's gap runs from then) and, in `sent`, whether it did (for `release`).
    A later send of the same request (aiohttp's retry after a dead keep-alive connection, a
    robots.txt redirect's hop) pushes the host's clock to it."""

    __slots__ = ("_frontier", "_host", "_wake", "sent")

    def __init__(self, frontier: Frontier[Any], host: str, wake: Callable[[], None]) -> None:
        self._frontier = frontier
        self._host = host
        self._wake = wake
        self.sent = False

    def __call__(self) -> None:
        if self.sent:
            self._frontier.resent(self._host)
            return
        self.sent = True
        if self._frontier.sent(self._host):
            self._wake()  # the host's next request may be handed out, soon or now


class MeteredFetch:
    def __init__(self, transport: Transport, scope: Scope, metrics: Metrics, watch: LoopWatch,
                 clock: Callable[[], float], *, cookies: CookieKeeper | None = None) -> None:
        self._transport = transport
        self._cookies = cookies
        self._scope = scope
        self._metrics = metrics
        self._watch = watch
        self._clock = clock

    async def fetch(self, url: URL, want: WantBody | None = None, *,
                    keep_alive: bool = True, send: Sending | None = None,
                    on_sent: OnSent | None = None) -> FetchResult:
        """One fetch, counted in the metrics (robots.txt included) whatever its end. Its time
        leaves out any stretch the event loop was blocked (by a callback) meanwhile: the
        server's answer waited for us then, not we for it."""
        host, started = urls.host_key(url), self._clock()
        try:
            if not self._scope.allows_url(url):
                # Admission keeps such URLs out; this is the guard every request passes
                # (robots.txt, redirect hops, a state file written by an older version).
                raise OutOfScope(f"{url.host}:{url.port} is outside the crawl's hosts and "
                                 f"ports ({_ports(self._scope.ports)})", url=str(url))
            result = await self._transport.fetch(url, want, keep_alive=keep_alive, send=send,
                                                 on_sent=on_sent)
        except FetchError as exc:
            self._metrics.fetch_failed(host, exc.kind, self._took(started))
            raise
        finally:
            # Before this fetch's outcome is recorded: its commit carries the cookies it set.
            if self._cookies is not None \
                    and self._transport.cookie_changes != self._cookies.seen:
                self._cookies.after_fetch()
        self._metrics.answered(host, result.status, len(result.body), self._took(started))
        return result

    def _took(self, started: float) -> float:
        end = self._clock()
        return max(0.0, end - started - self._watch.blocked(started, end))


def _ports(ports: frozenset[int]) -> str:
    return "ports " + ", ".join(map(str, sorted(ports)))
