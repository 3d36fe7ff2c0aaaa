"""Per-host queues and politeness clocks. Pure decisions, no I/O: the engine asks what may
start now, starts it, and reports back when it ends and how the server answered.

Each host has a slot (like Scrapy's per-host Slot): its queue, requests in flight, and the
earliest time the next request may start. The rules (concurrency cap, delay) are config,
overridable per host; the live state is the slot and a penalty that grows while a server
says it is overloaded (429, 5xx) and shrinks as it recovers. A host that must wait is simply
not offered: it never holds a worker while others are ready (no head-of-line blocking).

With `from_send=True` (the engine's) a host's clock runs from when its request was actually
sent, as the engine reports (`sent`), not from the pop: between the two lie the event loop's
queue and a connection to open, and a later request on a reused connection could overtake
it. While a request popped for a host with a delay is not sent yet, the host's next one is
not handed out; `release(key, sent=False)` ends that for a request that failed unsent.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
Clock = Callable[[], float]

MAX_PENALTY = 60.0  # seconds between requests to a host that keeps failing, at the most
FIRST_PENALTY = 1.0
FORGET_PENALTY = 0.05


@dataclass(frozen=True, slots=True)
class HostRule:
    per_host: int
    delay: float


@dataclass(slots=True)
class _Slot(Generic[T]):
    queue: deque[T] = field(default_factory=deque)
    in_flight: int = 0
    unsent: int = 0  # popped, not reported sent nor released yet (from_send only)
    next_start: float = float("-inf")
    scheduled: bool = False  # in the ready heap; kept to avoid duplicate heap entries


class Frontier(Generic[T]):
    """Hands out queued work host by host, respecting a per-host concurrency cap and a minimum
    delay between the starts of two requests to the same host."""

    def __init__(self, per_host: int, delay: float, clock: Clock = time.monotonic, *,
                 from_send: bool = False) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        self._default = HostRule(per_host, delay)
        self._clock = clock
        self._from_send = from_send
        self._slots: dict[str, _Slot[T]] = {}
        # Told of each send (key, when): an observer's (crawler/observe/sendlog.py).
        self.on_sent: Callable[[str, float], None] | None = None
        self._rules: dict[str, HostRule] = {}  # hosts with rules of their own
        self._penalty: dict[str, float] = {}  # hosts that told us to slow down
        self._penalised_at: dict[str, float] = {}
        # Hosts that have work and a free connection, ordered by when they may start.
        self._ready: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._queued = 0
        self._in_flight = 0

    def __len__(self) -> int:
        """Queued items (not counting those in flight)."""
        return self._queued

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def hosts(self) -> int:
        return len(self._slots)

    # -- rules and feedback ---------------------------------------------------------------

    def set_rule(self, key: str, *, per_host: int | None = None,
                 delay: float | None = None) -> None:
        """Give one host its own concurrency cap and/or delay."""
        current = self.rule(key)
        self._rules[key] = HostRule(per_host or current.per_host,
                                    current.delay if delay is None else delay)

    def set_delay(self, key: str, seconds: float) -> None:
        """Use another delay between request starts for one host (e.g. its Crawl-delay)."""
        self.set_rule(key, delay=seconds)

    def rule(self, key: str) -> HostRule:
        return self._rules.get(key, self._default)

    def gap(self, key: str) -> float:
        """The delay in force for a host now: its rule, or more while it is penalised."""
        return max(self.rule(key).delay, self._penalty.get(key, 0.0))

    def slow_down(self, key: str, retry_after: float | None = None) -> float:
        """The server is overloaded (429, 5xx): double the host's penalty and push its clock,
        to `retry_after` seconds from now if it said so. Returns the penalty in force.

        Answers to requests that were already in flight together are one wave: the penalty
        doubles once per wave, not once per answer.
        """
        now = self._clock()
        penalty = self._penalty.get(key, 0.0)
        if now - self._penalised_at.get(key, float("-inf")) >= penalty:
            penalty = min(MAX_PENALTY, max(FIRST_PENALTY, 2 * penalty))
            self._penalty[key] = penalty
            self._penalised_at[key] = now
        slot = self._slot(key)
        slot.next_start = max(slot.next_start, now + max(penalty, retry_after or 0.0))
        return penalty

    def recover(self, key: str) -> None:
        """The server answered normally: halve the penalty, forget it once it is small."""
        penalty = self._penalty.get(key)
        if penalty is not None:
            if penalty / 2 < FORGET_PENALTY:
                del self._penalty[key]
                self._penalised_at.pop(key, None)
            else:
                self._penalty[key] = penalty / 2

    # -- queue --------------------------------------------------------------------------------

    def queued(self, key: str) -> int:
        """Items of one host waiting here."""
        slot = self._slots.get(key)
        return 0 if slot is None else len(slot.queue)

    def push(self, key: str, item: T) -> None:
        slot = self._slot(key)
        slot.queue.append(item)
        self._queued += 1
        self._schedule(key, slot)

    def pop(self) -> tuple[str, T] | None:
        """The next item whose host may start a request now, marking it started."""
        now = self._clock()
        while self._ready:
            start, _, key = self._ready[0]
            if start > now:
                return None
            heapq.heappop(self._ready)
            slot = self._slots.get(key)
            if slot is None:  # emptied by withdraw() and forgotten since
                continue
            slot.scheduled = False
            if slot.next_start > now:  # its clock was pushed after it was scheduled
                self._schedule(key, slot)
                continue
            if not self._may_start(key, slot):
                continue
            item = slot.queue.popleft()
            self._queued -= 1
            slot.in_flight += 1
            slot.unsent += self._from_send
            self._in_flight += 1
            slot.next_start = now + self.gap(key)
            self._schedule(key, slot)
            return key, item
        return None

    def sent(self, key: str, at: float | None = None) -> bool:
        """A request popped for `key` went out at `at` (now if None; from_send): the host's gap
        runs from then. True if that lets a request of the host be handed out (wake the
        workers that wait)."""
        slot = self._slots[key]
        slot.unsent -= 1
        at = self._clock() if at is None else at
        slot.next_start = max(slot.next_start, at + self.gap(key))
        if self.on_sent is not None:
            self.on_sent(key, at)
        was = slot.scheduled
        self._schedule(key, slot)
        return slot.scheduled and not was

    def resent(self, key: str, at: float | None = None) -> None:
        """A request already reported sent went out again, at `at` (now if None): aiohttp's
        retry of a GET on a fresh connection, after a keep-alive one turned out dead, or a
        redirect hop of robots.txt. The host's gap runs from this later send."""
        at = self._clock() if at is None else at
        slot = self._slots[key]
        slot.next_start = max(slot.next_start, at + self.gap(key))
        if self.on_sent is not None:
            self.on_sent(key, at)

    def release(self, key: str, *, sent: bool = True) -> None:
        """A request to `key` has ended (successfully or not); `sent=False`: it failed before
        it was sent (or was never reported sent), which ends its hold on the host."""
        slot = self._slots[key]
        if self._from_send and not sent:
            slot.unsent -= 1
        slot.in_flight -= 1
        self._in_flight -= 1
        if slot.queue:
            self._schedule(key, slot)
        elif slot.in_flight == 0 and slot.next_start <= self._clock():
            del self._slots[key]  # idle and its clock has run out: nothing left to remember

    def hold(self, key: str, seconds: float) -> None:
        """Start nothing to one host for `seconds` (its gate, set by another process)."""
        slot = self._slot(key)
        slot.next_start = max(slot.next_start, self._clock() + seconds)

    def clocks(self) -> Iterator[tuple[str, float]]:
        """Each host whose clock still runs, with the seconds left on it."""
        now = self._clock()
        for key, slot in self._slots.items():
            if slot.next_start > now:
                yield key, slot.next_start - now

    def activity(self) -> Iterator[tuple[str, int, int, float]]:
        """Each host with a slot now: (key, in flight, queued, delay in force)."""
        for key, slot in self._slots.items():
            yield key, slot.in_flight, len(slot.queue), self.gap(key)

    def wait_time(self) -> float | None:
        """Seconds until some queued item may start (0 if one may now); None when none can
        start until something is released or pushed."""
        while self._ready:
            start, _, key = self._ready[0]
            slot = self._slots.get(key)
            if slot is not None and self._may_start(key, slot):
                return max(0.0, start - self._clock())
            heapq.heappop(self._ready)
            if slot is not None:
                slot.scheduled = False
        return None

    def withdraw(self, key: str) -> list[T]:
        """Take every queued item of one host out (its host is down)."""
        slot = self._slots.get(key)
        if slot is None:
            return []
        items = list(slot.queue)
        slot.queue.clear()
        self._queued -= len(items)
        return items

    def prune(self) -> None:
        """Forget idle hosts whose politeness clock has run out."""
        now = self._clock()
        idle = [k for k, s in self._slots.items()
                if not s.queue and s.in_flight == 0 and s.next_start <= now]
        for key in idle:
            del self._slots[key]

    def _slot(self, key: str) -> _Slot[T]:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        return slot

    def _may_start(self, key: str, slot: _Slot[T]) -> bool:
        """Work queued and a free connection, and no earlier request of the host still
        unsent (when the host has a delay to keep: without one, starts may be back to back)."""
        return (bool(slot.queue) and slot.in_flight < self.rule(key).per_host
                and not (slot.unsent and self.gap(key) > 0))

    def _schedule(self, key: str, slot: _Slot[T]) -> None:
        if not slot.scheduled and self._may_start(key, slot):
            slot.scheduled = True
            heapq.heappush(self._ready, (slot.next_start, next(self._seq), key))
