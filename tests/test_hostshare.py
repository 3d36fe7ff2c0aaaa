"""HostShare's side of host leases, over a store stand-in whose calls can hang as a store
connecting again does: the leases are abandoned (their hosts' work dropped here) once they
may have run out, never sooner and once an outage; and the robots.txt gate lets go of the
jobs of a host lost to another process even while its robots.txt is being fetched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import cast

from crawler.engine.hostshare import ABANDON_AT, HostShare
from crawler.engine.jobs import Work
from crawler.policy.frontier import Frontier
from crawler.policy.robots import RobotsGate
from storage import Store

LEASE = 0.6


class Stand:
    """What HostShare asks of a shared store; `hang` makes renew() and hand_back() wait."""

    shared = True
    lease = LEASE

    def __init__(self, held: set[str]) -> None:
        self.held = held
        self.hang = asyncio.Event()
        self.hang.set()
        self.renewals: list[float] = []
        self.abandoned: list[float] = []
        self._watchers: list[Callable[[set[str]], None]] = []

    def watch(self, lost: Callable[[set[str]], None]) -> None:
        self._watchers.append(lost)

    async def renew(self) -> set[str]:
        await self.hang.wait()
        self.renewals.append(time.monotonic())
        return set()

    async def hand_back(self, gaps: Mapping[str, float], *,
                        delays: Mapping[str, float] | None = None) -> None:
        await self.hang.wait()

    def abandon(self) -> None:
        self.abandoned.append(time.monotonic())
        lost, self.held = self.held, set()
        for watcher in self._watchers:
            watcher(lost)


def frontier_with(*hosts: str) -> Frontier[Work]:
    frontier: Frontier[Work] = Frontier(per_host=2, delay=0.0)
    for host in hosts:
        frontier.push(f"{host}:80", cast(Work, object()))
    return frontier


async def run_for(share: HostShare, seconds: float) -> None:
    task = asyncio.create_task(share.keep())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_store_that_hangs_has_its_leases_abandoned_in_time() -> None:
    stand = Stand({"a.test", "b.test"})
    frontier = frontier_with("a.test", "b.test")
    share = HostShare(cast(Store, stand), frontier, changed=lambda: None)
    began = time.monotonic()
    stand.hang.clear()  # the database goes away as the run begins
    task = asyncio.create_task(share.keep())
    try:
        await asyncio.sleep(LEASE * 1.5)
        assert len(stand.abandoned) == 1  # once an outage
        waited = stand.abandoned[0] - began
        assert LEASE * ABANDON_AT <= waited < LEASE, waited
        assert len(frontier) == 0 and share.lost == 2  # nothing of theirs is sent now
        stand.hang.set()  # back: renewed at once, and not abandoned again
        await asyncio.sleep(LEASE * 1.5)
    finally:
        stand.hang.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(stand.abandoned) == 1, stand.abandoned
    assert stand.renewals and stand.renewals[0] - began > LEASE


async def test_leases_renewed_in_time_are_kept() -> None:
    stand = Stand({"a.test"})
    frontier = frontier_with("a.test")
    share = HostShare(cast(Store, stand), frontier, changed=lambda: None)
    await run_for(share, LEASE * 3)
    assert stand.abandoned == [] and len(frontier) == 1
    assert len(stand.renewals) >= 4  # a third of a lease apart


def test_the_gate_lets_go_of_a_hosts_jobs_while_its_robots_txt_is_fetched() -> None:
    class J:
        def __init__(self, host: str) -> None:
            self.host = host

    gate: RobotsGate[J] = RobotsGate("bot", 3, time.monotonic)
    assert gate.hold("http://a.test", J("a.test:80"))  # its robots.txt is being fetched
    gate.hold("http://a.test", J("a.test:80"))
    gate.hold("http://b.test", J("b.test:80"))
    gone = gate.withdraw_where(lambda job: job.host == "a.test:80")
    assert [job.host for job in gone] == ["a.test:80"] * 2
    assert gate.held_count == 1
