"""What the write path holds in memory: outcomes recorded but not committed yet, and this
run's counts, kept as the writes go so that showing progress costs no table scan."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from storage.base import Completion, CrawlCounts, Failure, Outcome, StoredCookie

MAX_PENDING_NEW = 32_768  # new requests held for the next commit, at most: 64 MB of long URLs


@dataclass(slots=True)
class Tally:
    queued: int = 0
    leased: int = 0
    done: int = 0
    failed: int = 0
    items: int = 0
    counters: Counter[str] = field(default_factory=Counter)
    parked: int = 0

    @classmethod
    def of(cls, counts: CrawlCounts) -> Tally:
        return cls(counts.queued, counts.leased, counts.done, counts.failed, counts.items,
                   Counter(counts.counters), counts.parked)

    def copy(self) -> Tally:
        return Tally(self.queued, self.leased, self.done, self.failed, self.items,
                     Counter(self.counters), self.parked)

    def move(self, source: str, target: str, n: int) -> None:
        if n > 0:
            setattr(self, source, getattr(self, source) - n)
            setattr(self, target, getattr(self, target) + n)

    def merge(self, other: Tally) -> None:
        self.queued += other.queued
        self.leased += other.leased
        self.done += other.done
        self.failed += other.failed
        self.items += other.items
        self.counters.update(other.counters)
        self.parked += other.parked

    def counts(self) -> CrawlCounts:
        return CrawlCounts(self.queued, self.leased, self.done, self.failed, self.items,
                           {name: n for name, n in sorted(self.counters.items()) if n},
                           self.parked)


class Ledger:
    """Recorded outcomes wait here for the next commit (group commit), and what the open
    transaction counts (`delta`) joins `tally` only if it commits. A transaction that fails
    gives its outcomes back, ahead of those recorded since: fencing makes a second attempt
    safe."""

    def __init__(self, batch_size: int) -> None:
        self._batch_size = batch_size
        self.pending: list[Outcome] = []
        self._found = 0  # requests found by the pending outcomes
        self.applying: list[Outcome] = []  # taken into the open transaction
        self.tally = Tally()
        self.delta = Tally()
        self.cookies: list[StoredCookie] | None = None  # the jar to write with the next commit
        self._applying_cookies: list[StoredCookie] | None = None

    @property
    def due(self) -> bool:
        """Whether anything waits for the next commit."""
        return bool(self.pending) or self.cookies is not None

    def take_cookies(self) -> list[StoredCookie] | None:
        """The jar to write, into the open transaction (None: unchanged since written)."""
        cookies, self.cookies = self.cookies, None
        self._applying_cookies = cookies
        return cookies

    def record(self, outcome: Outcome) -> bool:
        """Keep `outcome` for the next commit; whether that commit is due now."""
        self.pending.append(outcome)
        self._found += _found(outcome)
        # Pages of many long links must not make a batch of 512 outcomes hold gigabytes.
        return len(self.pending) >= self._batch_size or self._found >= MAX_PENDING_NEW

    def take(self) -> list[Outcome]:
        """Every pending outcome, into the open transaction."""
        batch, self.pending = self.pending, []
        self._found = 0
        self.applying.extend(batch)  # until COMMIT succeeds
        return batch

    def committed(self) -> None:
        self.tally.merge(self.delta)
        self.applying = []
        self.delta = Tally()
        self._applying_cookies = None

    def aborted(self) -> None:
        if self.cookies is None:  # a jar kept since is newer than the one given back
            self.cookies = self._applying_cookies
        self._applying_cookies = None
        self.pending[:0] = self.applying
        self._found = sum(map(_found, self.pending))
        self.applying = []
        self.delta = Tally()


def _found(outcome: Outcome) -> int:
    if isinstance(outcome, Completion | Failure):
        return len(outcome.requests) + len(outcome.parked)
    return 0
