"""What a store's write path holds in memory: outcomes recorded but not committed yet, and this
run's counts, kept as the writes go so that showing progress costs no table scan."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from storage.base import Completion, CrawlCounts, Failure, FeedMark, Outcome, StoredCookie

MAX_PENDING_NEW = 32_768  # new requests held for the next commit, at most: 64 MB of long URLs


class Journal(Protocol):
    """Told how each transaction ended, to keep or give back what it held in memory."""

    def committed(self) -> None: ...

    def aborted(self) -> None: ...


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
        # The cookies to write with the next commit, by (domain, path without its trailing
        # slashes, name): several changes to one cookie write once. None: it is gone.
        self.cookies = CookieChanges()
        self._applying_cookies = CookieChanges()
        # The feeds' marks to write with the next commit, by name: the last one of each.
        self.feeds: dict[str, FeedMark] = {}
        self._applying_feeds: dict[str, FeedMark] = {}

    @property
    def due(self) -> bool:
        """Whether anything waits for the next commit."""
        return bool(self.pending) or bool(self.cookies) or bool(self.feeds)

    def take_feeds(self) -> list[FeedMark]:
        """The feed marks to write, into the open transaction."""
        self._applying_feeds, self.feeds = self.feeds, {}
        return list(self._applying_feeds.values())

    def take_cookies(self) -> CookieChanges:
        """The cookie changes to write, into the open transaction."""
        cookies, self.cookies = self.cookies, CookieChanges()
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
        self._applying_cookies = CookieChanges()
        self._applying_feeds = {}

    def aborted(self) -> None:
        self.cookies = self._applying_cookies.then(self.cookies)
        self._applying_cookies = CookieChanges()
        self.feeds = {**self._applying_feeds, **self.feeds}  # a later mark wins
        self._applying_feeds = {}
        self.pending[:0] = self.applying
        self._found = sum(map(_found, self.pending))
        self.applying = []
        self.delta = Tally()


CookieKey = tuple[str, str, str]


@dataclass
class CookieChanges:
    """Cookie writes waiting for a commit: `replace` drops every kept cookie first (a whole
    jar given), then each key's cookie is written, or deleted (None)."""

    replace: bool = False
    by_key: dict[CookieKey, StoredCookie | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.replace or bool(self.by_key)

    def whole(self, cookies: Iterable[StoredCookie]) -> None:
        self.replace = True
        self.by_key = {cookie_key(c): c for c in cookies}

    def change(self, kept: Iterable[StoredCookie], gone: Iterable[CookieKey]) -> None:
        for domain, path, name in gone:
            self.by_key[domain, path.rstrip("/"), name] = None
        for cookie in kept:
            self.by_key[cookie_key(cookie)] = cookie

    def then(self, later: CookieChanges) -> CookieChanges:
        """These changes followed by `later` (given back by a failed commit)."""
        if later.replace:
            return later
        return CookieChanges(self.replace, {**self.by_key, **later.by_key})


def cookie_key(cookie: StoredCookie) -> CookieKey:
    return cookie.domain, cookie.path.rstrip("/"), cookie.name


def _found(outcome: Outcome) -> int:
    if isinstance(outcome, Completion | Failure):
        return len(outcome.requests) + len(outcome.parked)
    return 0
