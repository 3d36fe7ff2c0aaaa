"""robots.txt per RFC 9309: what an origin's file, or its absence, allows; which redirects
to follow while fetching it (`after_answer`); and the requests waiting for it (`RobotsGate`).
Pure decisions: the engine does the fetching (`crawler.engine.robotstxt`)."""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from protego import Protego
from yarl import URL

from crawler.errors import FailureKind, FetchError, message
from crawler.urls import canon as urls
from crawler.urls.canon import CanonicalURL
from crawler.urls.origin import Origin

MAX_BYTES = 512 * 1024  # RFC 9309: parse at least the first 500 KiB
MAX_AGE = 24 * 3600.0  # RFC 9309: do not use a cached copy for more than 24 hours
MAX_REDIRECTS = 5  # RFC 9309: follow at least five consecutive redirects


class RobotsState(enum.Enum):
    RULES = "rules"  # 2xx: the file's rules apply
    ALLOW_ALL = "allow_all"  # 4xx: "unavailable", everything may be crawled
    UNREACHABLE = "unreachable"  # 5xx or no answer: disallow everything for now


@dataclass(frozen=True, slots=True)
class Robots:
    state: RobotsState
    fetched_at: float  # on the crawl's monotonic clock
    rules: Protego | None = None
    reason: str = ""
    # The start of every path a Disallow rule may match (see `disallow_prefixes`); by
    # default "", which every path starts with: protego decides everything.
    disallowing: tuple[str, ...] = ("",)
    final: bool = False  # unreachable for a reason that asking again will not change
    kind: FailureKind = FailureKind.ROBOTS  # what made it unreachable

    @property
    def why(self) -> str:
        """The reason, led by the kind of failure behind it, as logs show it."""
        return self.reason if self.kind is FailureKind.ROBOTS else f"{self.kind}: {self.reason}"

    def allows(self, url: CanonicalURL, user_agent: str) -> bool:
        if self.state is RobotsState.RULES:
            assert self.rules is not None
            return bool(self.rules.can_fetch(url, user_agent))
        return self.state is RobotsState.ALLOW_ALL

    def may_disallow(self, key: CanonicalURL) -> bool:
        """Whether a Disallow rule could match a canonical URL's text. False is certain (the
        URL is allowed) and cheap; True means protego must decide."""
        return "%" in key or key.startswith(self.disallowing, key.index("/", 8))

    def crawl_delay(self, user_agent: str) -> float | None:
        if self.rules is None:
            return None
        delay = self.rules.crawl_delay(user_agent)
        return None if delay is None else float(delay)

    @property
    def sitemaps(self) -> list[str]:
        return [] if self.rules is None else list(self.rules.sitemaps)

    def expired(self, now: float) -> bool:
        return now - self.fetched_at > MAX_AGE


def robots_url(url: URL) -> URL:
    return url.with_path("/robots.txt").with_query(None).with_fragment(None)


def from_response(status: int, body: bytes, now: float) -> Robots:
    """The policy a final (non-redirect) robots.txt response sets."""
    if 200 <= status < 300:
        text = body[:MAX_BYTES].decode("utf-8", errors="replace")
        return Robots(RobotsState.RULES, now, Protego.parse(text),
                      disallowing=disallow_prefixes(text))
    if 400 <= status < 500:
        return Robots(RobotsState.ALLOW_ALL, now)
    return Robots(RobotsState.UNREACHABLE, now, reason=f"robots.txt answered HTTP {status}")


# Characters that every percent-encoding normaliser (yarl's, protego's) leaves as they are.
_LITERAL = re.compile(r"[A-Za-z0-9/._~-]*")
_FIELD_END = re.compile(r"[:\s]")


def disallow_prefixes(text: str) -> tuple[str, ...]:
    """For each Disallow rule of any group, the literal start of the paths it can match.

    Asked of every new link, protego costs as much as the rest of admission; most links
    start with none of these prefixes and are certainly allowed. The reading is generous
    (every spelling protego accepts begins "di"), so it can only ask protego too often:
    an unreadable rule gives "", which every path starts with. And a link let through is
    checked again, by protego, before it is fetched."""
    prefixes: set[str] = set()
    for raw in text.splitlines():
        line = raw.partition("#")[0].strip()
        if line[:2].lower() != "di":
            continue
        field_end = _FIELD_END.search(line)
        value = line[field_end.end():].strip() if field_end else ""
        if value.startswith(":"):  # "Disallow : /x"
            value = value[1:].strip()
        if not value:
            continue  # an empty Disallow allows everything
        literal = _LITERAL.match(value)
        prefix = literal.group() if literal else ""
        prefixes.add(prefix if prefix.startswith("/") else "")
    return tuple(sorted(prefixes))


def unreachable(reason: str, now: float, *, final: bool = False,
                kind: FailureKind = FailureKind.ROBOTS) -> Robots:
    return Robots(RobotsState.UNREACHABLE, now, reason=reason, final=final, kind=kind)


# -- fetching robots.txt (RFC 9309), as decisions: the engine fetches, these say what next ----


@dataclass(frozen=True, slots=True)
class Follow:
    """robots.txt redirects here: fetch this URL next."""

    url: URL


@dataclass(frozen=True, slots=True)
class Offsite:
    """robots.txt redirects outside the crawl's scope. Every request passes the scope,
    robots.txt's redirects too, so it is not followed: the file is unavailable."""

    target: CanonicalURL
    policy: Robots


def after_answer(url: URL, status: int, location: str | None, body: bytes, *, hops: int,
                 in_scope: Callable[[URL], bool], now: float) -> Robots | Follow | Offsite:
    """What an answer to a fetch of robots.txt at `url` means, `hops` redirects into the
    chain: the policy, or the redirect to follow. Up to five redirects are followed, across
    hosts too; one that cannot be followed, or one too many, makes the file "unavailable",
    as a 4xx does (all allowed)."""
    if location is None:
        return from_response(status, body, now)
    target = urls.join(url, location)
    if target is None:
        return Robots(RobotsState.ALLOW_ALL, now)
    parsed = urls.parsed(target)
    if not in_scope(parsed):
        return Offsite(target, Robots(RobotsState.ALLOW_ALL, now))
    if hops >= MAX_REDIRECTS:
        return Robots(RobotsState.ALLOW_ALL, now)
    return Follow(parsed)


def after_failure(exc: FetchError, url: URL, now: float) -> Robots:
    """robots.txt could not be fetched: everything is disallowed for now. A failure that is
    the same every time (refused by a rule of ours, TLS) is final: not asked again."""
    return unreachable(f"{message(exc)} (fetching {url})", now, final=not exc.retryable,
                       kind=exc.kind)


class Verdict(enum.Enum):
    ALLOW = "allow"
    SKIP = "skip"  # disallowed: a counted outcome, never fetched
    FAIL = "fail"  # robots.txt could not be had, and we gave up on this origin


J = TypeVar("J")


@dataclass(frozen=True, slots=True)
class Resolution(Generic[J]):
    """What an answer for robots.txt means for the requests that waited for it."""

    jobs: list[J]
    retry: bool  # unreachable, not given up: the jobs wait and robots.txt is asked again
    tries: int  # unreachable answers so far for this origin
    policy: Robots


class RobotsGate(Generic[J]):
    """Per-origin robots.txt policies and the requests waiting for them. No I/O: the engine
    fetches robots.txt when `hold()` says so and reports the answer with `resolve()`."""

    def __init__(self, user_agent: str, max_tries: int, clock: Callable[[], float]) -> None:
        self._user_agent = user_agent
        self._max_tries = max_tries
        self._clock = clock
        self._policies: dict[Origin, Robots] = {}
        self._held: dict[Origin, list[J]] = {}
        self._failures: Counter[Origin] = Counter()
        self.held_count = 0

    def policy(self, origin: Origin) -> Robots | None:
        return self._policies.get(origin)

    def check(self, origin: Origin, url: CanonicalURL) -> Verdict | None:
        """The verdict for a URL, or None while the origin's robots.txt is not known."""
        policy = self._policies.get(origin)
        if policy is None or policy.expired(self._clock()):
            return None
        return self.verdict(policy, url)

    def verdict(self, policy: Robots, url: CanonicalURL) -> Verdict:
        if policy.allows(url, self._user_agent):
            return Verdict.ALLOW
        return Verdict.FAIL if policy.state is RobotsState.UNREACHABLE else Verdict.SKIP

    def forbids(self, origin: Origin, url: CanonicalURL) -> bool:
        """A known robots.txt disallows the URL, a canonical URL's text (unknown or
        unreachable: not yet). Asked of every new link, so it goes straight to the rules."""
        policy = self._policies.get(origin)
        return (policy is not None and policy.state is RobotsState.RULES
                and policy.may_disallow(url) and not policy.expired(self._clock())
                and not policy.allows(url, self._user_agent))

    def hold(self, origin: Origin, job: J) -> bool:
        """Keep a job until the origin's robots.txt is known; True if it must be fetched."""
        held = self._held.get(origin)
        first = held is None
        if held is None:
            held = self._held[origin] = []
            self._policies.pop(origin, None)  # expired: ask again
        held.append(job)
        self.held_count += 1
        return first

    def withdraw(self, origin: Origin) -> list[J]:
        """Take back the jobs waiting on an origin (e.g. its host is down)."""
        jobs = self._held.pop(origin, [])
        self.held_count -= len(jobs)
        return jobs

    def withdraw_where(self, which: Callable[[J], bool]) -> list[J]:
        """Take back the jobs of every origin whose first held job is `which`."""
        origins = [o for o, jobs in self._held.items() if jobs and which(jobs[0])]
        return [job for origin in origins for job in self.withdraw(origin)]

    def resolve(self, origin: Origin, policy: Robots) -> Resolution[J]:
        jobs = self.withdraw(origin)
        if policy.state is not RobotsState.UNREACHABLE:
            self._policies[origin] = policy
            self._failures.pop(origin, None)  # a good answer starts the count afresh
            return Resolution(jobs, False, 0, policy)
        self._failures[origin] += 1
        tries = self._failures[origin]
        if tries < self._max_tries and not policy.final:
            return Resolution(jobs, True, tries, policy)
        policy = unreachable(f"{policy.reason}; gave up after {tries} tries", policy.fetched_at,
                             kind=policy.kind)
        self._policies[origin] = policy
        return Resolution(jobs, False, tries, policy)

    def failure(self, origin: Origin) -> tuple[FailureKind, str]:
        """Why an origin's requests fail: what made its robots.txt unreachable."""
        policy = self._policies.get(origin)
        return (FailureKind.ROBOTS, "") if policy is None else (policy.kind, policy.reason)
