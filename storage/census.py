"""Who is working on a crawl and where its hosts stand: what `crawl stats` and the live
display read of a crawl many processes share."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """A process that has run on the crawl (a run), as stats show it. Times are epoch
    seconds of the database's clock; `seen_ago` is counted against the database's now."""

    run: int
    hostname: str
    pid: int
    started: float
    last_seen: float | None
    seen_ago: float | None
    status: str
    """As stored ("finished", "interrupted", ...), but "crashed" for a run marked running
    whose process is gone: "running" only while its process lives."""
    pages: int | None
    """Done outcomes it stored (None where the store does not count them)."""
    leases: int | None
    """Hosts it holds a lease on now (None where the store has no leases)."""

    @property
    def live(self) -> bool:
        return self.status == "running"


class HostState(enum.StrEnum):
    """Where a host of a shared crawl stands: held by a process, free with work whose time
    or politeness gate has not come, free with work to hand out, or with nothing queued."""

    LEASED = "leased"
    WAITING = "waiting"
    READY = "ready"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class HostRecord:
    host: str
    state: HostState
    queued: int
    in_flight: int
    done: int
    failed: int
    holder: int | None
    """The run that holds its lease now."""
    gate: float
    """Seconds (database clock) until its politeness gate opens; 0 when open."""


@dataclass(frozen=True, slots=True)
class HostStates:
    """The hosts of a shared crawl by state, the leased ones by holder, and the hosts with
    the most work left."""

    states: Mapping[HostState, int]
    holders: Mapping[int, int]
    top: Sequence[HostRecord]
