"""What a store says and does about sharing its crawl with other processes. A store that
allows it (PostgreSQL) says `shared` and overrides the rest; the defaults are those of a
store one process has to itself (SQLite): nothing to renew, nothing to hand back."""

from __future__ import annotations

from collections.abc import Callable, Mapping

Lost = Callable[[set[str]], None]
Gaps = Mapping[str, float] | Callable[[], Mapping[str, float]]
"""Each host's delay left, in seconds: as a mapping, or as a function the store calls
inside its transaction (after the outcomes recorded meanwhile) for the figures as they are
then."""


class Sharable:
    @property
    def shared(self) -> bool:
        """Whether other processes may run this crawl at the same time. A shared store
        leases hosts to a process (`claim` only hands out requests of hosts it holds, so the
        process's own per-host limits are global), which must `renew()` them every third of
        a `lease` and `hand_back()` those it has no work for."""
        return False

    @property
    def lease(self) -> float:
        """Seconds a host lease lasts unrenewed. A process that could not renew its leases
        for most of this long must stop sending to their hosts (`abandon()`): another
        process may hold them by now."""
        return float("inf")

    def plan(self, hosts: int, delay: float = 0.0) -> None:
        """Hold up to `hosts` hosts at a time (more than the workers can keep busy, so that
        none idles while hosts wait out their delay). `delay`: the crawl's least gap between
        two requests to a host, kept after taking a host from a process that is gone (it
        may have just sent one) when the host's own delay was never said
        (`hand_back(delays=)`)."""
        return None

    def watch(self, lost: Lost) -> None:
        """Call `lost(hosts)` whenever hosts this process held turn out to be no longer its
        own: taken over (seen at a renewal, or on connecting again after the connection was
        lost) or abandoned. Their requests here are not ours to fetch any more."""
        return None

    async def renew(self) -> set[str]:
        """Renew this run's host leases (and say it is alive); returns the hosts whose lease
        was lost (taken over): their requests here are no longer ours."""
        return set()

    def abandon(self) -> None:
        """This process stops work on every host it holds (it could not renew their leases
        in time): they are lost now (`watch`), and what it had leased of them goes back to
        the queue with the next statement the store gets through."""
        return None

    async def hand_back(self, gaps: Gaps, *,
                        delays: Mapping[str, float] | None = None,
                        everything: bool = False) -> None:
        """Give back the held hosts that have nothing leased and nothing due (all of them,
        their leased requests queued again, when `everything`), each not to be fetched
        from for `gaps[host]` more seconds (0 if absent): the delay its last request
        here left. `delays`: the delay in force for held hosts whose delay changed (their
        rule, Crawl-delay, backoff), kept for whoever takes a host over from a process that
        dies."""
        return None
