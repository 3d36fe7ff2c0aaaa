"""Unit tests of `crawler.policy.frontier.Frontier`: pure decisions over an injected fake clock."""

from __future__ import annotations

import itertools
import random
from collections import deque

import pytest

from crawler.engine.fetch import HostSend
from crawler.policy.frontier import Frontier


class FakeClock:
    """A clock that only moves when told to. Values stay exact binary fractions."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(per_host: int = 1, delay: float = 0.0) -> tuple[Frontier[str], FakeClock]:
    clock = FakeClock()
    return Frontier(per_host=per_host, delay=delay, clock=clock), clock


def test_per_host_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="per_host"):
        Frontier(per_host=0, delay=0.0, clock=FakeClock())


def test_empty_frontier() -> None:
    f, _ = make()
    assert f.pop() is None
    assert f.wait_time() is None
    assert len(f) == 0
    assert f.in_flight == 0
    assert f.hosts == 0


# -- per-host cap -------------------------------------------------------------------------


def test_per_host_cap_is_never_exceeded_without_release() -> None:
    f, clock = make(per_host=2, delay=0.0)
    for i in range(5):
        f.push("a", f"a{i}")
    assert f.pop() == ("a", "a0")
    assert f.pop() == ("a", "a1")
    assert f.in_flight == 2
    # No amount of waiting frees a connection: only release does.
    for _ in range(3):
        clock.advance(1000.0)
        assert f.pop() is None
    assert len(f) == 3
    f.release("a")
    assert f.in_flight == 1
    assert f.pop() == ("a", "a2")
    assert f.pop() is None


def test_cap_is_per_host_not_global() -> None:
    f, _ = make(per_host=1, delay=0.0)
    for host in ("a", "b", "c"):
        f.push(host, f"{host}0")
        f.push(host, f"{host}1")
    popped = [f.pop() for _ in range(3)]
    assert sorted(p[0] for p in popped if p is not None) == ["a", "b", "c"]
    assert f.pop() is None
    assert f.in_flight == 3


# -- delay between starts -----------------------------------------------------------------


def test_second_start_to_a_host_waits_for_the_delay() -> None:
    f, clock = make(per_host=5, delay=2.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    assert f.pop() is None
    clock.advance(1.5)
    assert f.pop() is None
    clock.advance(0.5)
    assert f.pop() == ("a", "a1")


def test_delay_counts_from_start_not_from_release() -> None:
    f, clock = make(per_host=1, delay=2.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    clock.advance(2.0)
    f.release("a")
    # The delay has already passed since a0 started: a1 may start at once.
    assert f.pop() == ("a", "a1")


def test_zero_delay_starts_back_to_back() -> None:
    f, _ = make(per_host=3, delay=0.0)
    for i in range(3):
        f.push("a", f"a{i}")
    assert [f.pop() for _ in range(3)] == [("a", "a0"), ("a", "a1"), ("a", "a2")]


# -- no head-of-line blocking ---------------------------------------------------------------


def test_waiting_host_does_not_block_a_ready_host() -> None:
    f, _ = make(per_host=5, delay=10.0)
    f.push("a", "a0")
    f.push("a", "a1")
    f.push("a", "a2")
    f.push("b", "b0")
    assert f.pop() == ("a", "a0")
    # a must wait 10 s; b is ready now, although it was pushed after a's backlog.
    assert f.pop() == ("b", "b0")
    assert f.pop() is None


def test_host_at_cap_does_not_block_a_ready_host() -> None:
    f, _ = make(per_host=1, delay=0.0)
    f.push("a", "a0")
    f.push("a", "a1")
    f.push("b", "b0")
    assert f.pop() == ("a", "a0")
    assert f.pop() == ("b", "b0")


def test_host_that_becomes_ready_first_is_offered_first() -> None:
    f, clock = make(per_host=5, delay=3.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")  # a may start again at +3
    clock.advance(1.0)
    f.push("b", "b0")
    f.push("b", "b1")
    assert f.pop() == ("b", "b0")  # b may start again at +4
    clock.advance(2.0)
    assert f.pop() == ("a", "a1")
    assert f.pop() is None
    clock.advance(1.0)
    assert f.pop() == ("b", "b1")


# -- wait_time ----------------------------------------------------------------------------


def test_wait_time_zero_when_something_may_start() -> None:
    f, _ = make(per_host=1, delay=5.0)
    f.push("a", "a0")
    assert f.wait_time() == 0.0


def test_wait_time_is_the_exact_remaining_delay() -> None:
    f, clock = make(per_host=2, delay=2.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    assert f.wait_time() == 2.0
    clock.advance(0.5)
    assert f.wait_time() == 1.5
    clock.advance(1.25)
    assert f.wait_time() == 0.25
    clock.advance(0.25)
    assert f.wait_time() == 0.0
    clock.advance(7.0)
    assert f.wait_time() == 0.0  # never negative


def test_wait_time_is_the_soonest_host() -> None:
    f, clock = make(per_host=2, delay=4.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    clock.advance(3.0)
    f.push("b", "b0")
    f.push("b", "b1")
    assert f.pop() == ("b", "b0")
    assert f.wait_time() == 1.0  # a at +4, b at +7


def test_wait_time_none_when_every_host_is_at_its_cap() -> None:
    f, clock = make(per_host=1, delay=1.0)
    f.push("a", "a0")
    f.push("a", "a1")
    f.push("b", "b0")
    f.push("b", "b1")
    assert f.pop() is not None
    assert f.pop() is not None
    assert f.wait_time() is None
    clock.advance(50.0)
    assert f.wait_time() is None  # time does not help, only a release
    f.release("b")
    assert f.wait_time() == 0.0
    assert f.pop() == ("b", "b1")


def test_wait_time_none_when_nothing_is_queued() -> None:
    f, _ = make(per_host=2, delay=1.0)
    f.push("a", "a0")
    assert f.pop() == ("a", "a0")
    assert f.wait_time() is None


# -- FIFO, release, hosts, prune ------------------------------------------------------


def test_fifo_within_a_host() -> None:
    f, clock = make(per_host=1, delay=1.0)
    items = [f"a{i}" for i in range(20)]
    for item in items:
        f.push("a", item)
    got = []
    while len(got) < len(items):
        popped = f.pop()
        if popped is None:
            clock.advance(1.0)
            continue
        got.append(popped[1])
        f.release("a")
    assert got == items


def test_release_of_last_request_forgets_host_once_its_clock_ran_out() -> None:
    f, clock = make(per_host=1, delay=1.0)
    f.push("a", "a0")
    assert f.pop() == ("a", "a0")
    assert f.hosts == 1
    clock.advance(1.0)
    f.release("a")
    assert f.hosts == 0
    assert f.in_flight == 0


def test_release_keeps_politeness_clock_while_it_runs() -> None:
    f, clock = make(per_host=1, delay=1.0)
    f.push("a", "a0")
    assert f.pop() == ("a", "a0")
    f.release("a")  # ended at once: the next start must still wait a full delay
    assert f.hosts == 1
    f.push("a", "a1")
    assert f.pop() is None
    assert f.wait_time() == 1.0
    clock.advance(0.75)
    assert f.pop() is None
    clock.advance(0.25)
    assert f.pop() == ("a", "a1")


def test_release_does_not_forget_a_host_with_work_queued_or_in_flight() -> None:
    f, clock = make(per_host=2, delay=0.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    assert f.pop() == ("a", "a1")
    clock.advance(10.0)
    f.release("a")
    assert f.hosts == 1  # a1 still in flight
    f.release("a")
    assert f.hosts == 0


def test_hosts_counts_distinct_keys() -> None:
    f, _ = make()
    f.push("a", "1")
    f.push("b", "2")
    f.push("a", "3")
    assert f.hosts == 2
    assert len(f) == 3


def test_prune_forgets_only_idle_hosts_whose_clock_ran_out() -> None:
    f, clock = make(per_host=1, delay=5.0)
    f.push("idle", "i0")
    assert f.pop() == ("idle", "i0")
    f.release("idle")  # kept: its clock runs until +5
    f.push("busy", "b0")
    assert f.pop() == ("busy", "b0")  # in flight
    f.push("queued", "q0")
    f.push("queued", "q1")
    assert f.pop() == ("queued", "q0")
    f.release("queued")  # q1 still queued
    assert f.hosts == 3
    f.prune()
    assert f.hosts == 3  # idle's clock has not run out yet
    clock.advance(5.0)
    f.prune()
    assert f.hosts == 2  # only "idle" is forgotten
    assert f.pop() == ("queued", "q1")


def test_len_and_in_flight_bookkeeping() -> None:
    f, clock = make(per_host=2, delay=0.0)
    for i in range(4):
        f.push("a", f"a{i}")
    f.push("b", "b0")
    assert (len(f), f.in_flight) == (5, 0)
    assert f.pop() is not None
    assert f.pop() is not None
    assert (len(f), f.in_flight) == (3, 2)
    popped = f.pop()
    assert popped is not None
    f.release(popped[0])
    assert (len(f), f.in_flight) == (2, 2)
    for _ in range(2):
        clock.advance(1.0)
        popped = f.pop()
        assert popped is not None
        f.release(popped[0])
    assert (len(f), f.in_flight) == (0, 2)


# -- property-style: random operations against a reference model ------------------------------


class Model:
    """What the frontier must guarantee, written the plainest way."""

    def __init__(self, per_host: int, delay: float) -> None:
        self.per_host = per_host
        self.delay = delay
        self.queues: dict[str, deque[str]] = {}
        self.in_flight: dict[str, int] = {}
        self.last_start: dict[str, float] = {}

    def eligible(self, host: str, now: float) -> bool:
        return (
            bool(self.queues.get(host))
            and self.in_flight.get(host, 0) < self.per_host
            and (host not in self.last_start or self.last_start[host] + self.delay <= now)
        )

    def wait_time(self, now: float) -> float | None:
        waits = [
            max(0.0, self.last_start.get(h, float("-inf")) + self.delay - now)
            for h, q in self.queues.items()
            if q and self.in_flight.get(h, 0) < self.per_host
        ]
        return min(waits) if waits else None

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values())


class Harness:
    """Drives a Frontier and the Model side by side and checks they agree."""

    def __init__(self, per_host: int, delay: float) -> None:
        self.clock = FakeClock(0.0)
        self.frontier: Frontier[str] = Frontier(per_host=per_host, delay=delay, clock=self.clock)
        self.model = Model(per_host, delay)
        self.pushed: list[str] = []
        self.popped: list[str] = []
        self.running: list[str] = []  # one entry per request in flight (its host)

    def push(self, host: str) -> None:
        item = f"{host}-{len(self.pushed)}"
        self.frontier.push(host, item)
        self.model.queues.setdefault(host, deque()).append(item)
        self.pushed.append(item)

    def pop(self) -> None:
        model, now = self.model, self.clock.now
        result = self.frontier.pop()
        if result is None:
            stuck = [h for h in model.queues if model.eligible(h, now)]
            assert not stuck, f"pop() gave None while {stuck} could start (head-of-line)"
            return
        host, item = result
        assert model.eligible(host, now), f"{host} started against the rules at {now}"
        assert model.queues[host][0] == item, "not FIFO within the host"
        model.queues[host].popleft()
        if host in model.last_start:
            assert now - model.last_start[host] >= model.delay
        model.last_start[host] = now
        model.in_flight[host] = model.in_flight.get(host, 0) + 1
        assert model.in_flight[host] <= model.per_host
        self.running.append(host)
        self.popped.append(item)

    def release(self, index: int) -> None:
        host = self.running.pop(index)
        self.frontier.release(host)
        self.model.in_flight[host] -= 1

    def check(self) -> None:
        f, model = self.frontier, self.model
        assert len(f) == model.queued
        assert f.in_flight == len(self.running)
        assert f.wait_time() == model.wait_time(self.clock.now)
        busy = {h for h, q in model.queues.items() if q} | set(self.running)
        assert f.hosts >= len(busy)

    def finish(self) -> None:
        """Let the clock run on, releasing everything: each item comes out exactly once."""
        for _ in range(100_000):
            if len(self.popped) == len(self.pushed):
                break
            while self.running:
                self.release(len(self.running) - 1)
            self.pop()
            wait = self.frontier.wait_time()
            self.clock.advance(wait if wait else 0.125)
        while self.running:
            self.release(0)
        assert sorted(self.popped) == sorted(self.pushed)
        assert len(set(self.popped)) == len(self.popped)
        assert len(self.frontier) == 0
        self.clock.advance(self.model.delay + 1.0)
        self.frontier.prune()
        assert self.frontier.hosts == 0
        assert self.frontier.in_flight == 0


@pytest.mark.parametrize(
    ("seed", "per_host", "delay"),
    [(1, 1, 0.5), (2, 2, 1.0), (3, 3, 0.0), (4, 2, 0.25), (5, 1, 2.0)],
)
def test_random_operations_match_the_reference_model(
    seed: int, per_host: int, delay: float
) -> None:
    rng = random.Random(seed)
    h = Harness(per_host, delay)
    hosts = [f"h{i}" for i in range(6)]
    for _ in range(3000):
        op = rng.random()
        if op < 0.35:
            h.push(rng.choice(hosts))
        elif op < 0.65:
            h.pop()
        elif op < 0.85:
            if h.running:
                h.release(rng.randrange(len(h.running)))
        elif op < 0.97:
            h.clock.advance(rng.choice([0.0, 0.125, 0.25, 0.5, 1.0, 2.0]))
        else:
            h.frontier.prune()
        h.check()
    assert len(h.popped) > 300  # the run did real work
    h.finish()


def test_a_host_can_have_its_own_delay() -> None:
    frontier, clock = make(per_host=4, delay=0.1)
    frontier.set_delay("slow", 2.0)
    for i in range(2):
        frontier.push("slow", f"s{i}")
        frontier.push("fast", f"f{i}")
    popped = [frontier.pop(), frontier.pop()]
    assert sorted(p[0] for p in popped if p) == ["fast", "slow"]
    clock.advance(0.1)
    assert frontier.pop() == ("fast", "f1")
    assert frontier.pop() is None
    assert frontier.wait_time() == pytest.approx(1.9)
    clock.advance(1.9)
    assert frontier.pop() == ("slow", "s1")


def test_an_overloaded_host_is_slowed_then_recovers() -> None:
    frontier, clock = make(per_host=2, delay=0.0)
    assert frontier.slow_down("h") == 1.0
    assert frontier.slow_down("h") == 1.0  # the same wave of answers: no second doubling
    clock.advance(1.0)
    assert frontier.slow_down("h") == 2.0
    frontier.push("h", "x")
    frontier.push("other", "y")
    assert frontier.pop() == ("other", "y")  # other hosts are not slowed
    assert frontier.pop() is None
    assert frontier.wait_time() == pytest.approx(2.0)
    clock.advance(2.0)
    assert frontier.pop() == ("h", "x")
    assert frontier.gap("h") == 2.0
    frontier.recover("h")
    assert frontier.gap("h") == 1.0
    for _ in range(10):
        frontier.recover("h")
    assert frontier.gap("h") == 0.0


def test_retry_after_pushes_the_clock_and_the_penalty_is_capped() -> None:
    frontier, clock = make()
    frontier.slow_down("h", retry_after=30.0)
    frontier.push("h", "x")
    clock.advance(29.0)
    assert frontier.pop() is None
    clock.advance(1.0)
    assert frontier.pop() == ("h", "x")
    for _ in range(20):
        clock.advance(60.0)
        frontier.slow_down("h")
    assert frontier.gap("h") == 60.0


def test_a_host_rule_sets_its_own_cap() -> None:
    frontier, _ = make(per_host=3)
    frontier.set_rule("one", per_host=1)
    for i in range(3):
        frontier.push("one", f"o{i}")
        frontier.push("many", f"m{i}")
    popped = [p for p in iter(frontier.pop, None)]
    assert sorted(k for k, _ in popped) == ["many", "many", "many", "one"]


def test_a_host_emptied_by_withdraw_and_forgotten_is_skipped() -> None:
    frontier, _ = make(per_host=2)
    frontier.push("down", "a")
    frontier.push("down", "b")
    frontier.push("down", "c")
    assert frontier.pop() == ("down", "a")
    assert frontier.withdraw("down") == ["b", "c"]
    frontier.release("down")  # the host is idle: its slot is forgotten
    frontier.push("up", "x")
    assert frontier.pop() == ("up", "x")  # the stale entry for "down" is passed over
    assert frontier.pop() is None and len(frontier) == 0


# -- the clock runs from the send (from_send, the engine's) -------------------------------


def make_sending(per_host: int = 1, delay: float = 0.0) -> tuple[Frontier[str], FakeClock]:
    clock = FakeClock()
    return Frontier(per_host=per_host, delay=delay, clock=clock, from_send=True), clock


def test_gap_runs_from_the_send_not_from_the_pop() -> None:
    f, clock = make_sending(per_host=2, delay=1.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    clock.advance(0.25)  # the request waited this long to go out (a connection to open)
    f.sent("a", clock())
    clock.advance(0.75)  # a second after the pop, but not after the send
    assert f.pop() is None
    assert f.wait_time() == 0.25
    clock.advance(0.25)
    assert f.pop() == ("a", "a1")


def test_no_next_request_while_one_is_unsent() -> None:
    f, clock = make_sending(per_host=2, delay=1.0)
    for i in range(3):
        f.push("a", f"a{i}")
    f.push("b", "b0")
    assert f.pop() == ("a", "a0")
    clock.advance(30.0)  # not sent yet, however long: a later one would overtake it
    assert f.pop() == ("b", "b0")
    assert f.pop() is None
    assert f.wait_time() is None  # nothing to wait out: the host waits for the send
    assert f.sent("a", clock()) is True  # the workers must look again
    assert f.wait_time() == 1.0
    clock.advance(1.0)
    assert f.pop() == ("a", "a1")


def test_failed_before_sending_ends_the_hold() -> None:
    f, clock = make_sending(per_host=1, delay=1.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    f.release("a", sent=False)  # e.g. its connection could not be opened
    clock.advance(1.0)  # the clock from the pop still holds for a request never sent
    assert f.pop() == ("a", "a1")
    f.sent("a", clock())
    f.release("a")
    assert f.in_flight == 0
    assert f.hosts == 1  # its clock runs on


def test_per_host_n_starts_each_a_delay_after_the_previous_send() -> None:
    f, clock = make_sending(per_host=3, delay=0.5)
    for i in range(6):
        f.push("a", f"a{i}")
    starts: list[float] = []
    while len(starts) < 3:
        popped = f.pop()
        if popped is None:
            wait = f.wait_time()
            assert wait is not None
            clock.advance(wait)
            continue
        clock.advance(0.125)  # each goes out a little after its pop
        f.sent("a", clock())
        starts.append(clock())
    assert f.in_flight == 3  # N in flight at once
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(starts))
    assert f.pop() is None and f.wait_time() is None  # at its cap


def test_no_delay_no_hold() -> None:
    # Without a delay there is no gap to keep: a host's requests may start back to back.
    f, _ = make_sending(per_host=2, delay=0.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    assert f.pop() == ("a", "a1")
    assert f.sent("a") is False
    f.release("a")
    f.release("a", sent=False)
    assert f.in_flight == 0


def test_a_delay_set_while_unsent_holds_from_the_send() -> None:
    f, clock = make_sending(per_host=2, delay=0.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    f.set_delay("a", 2.0)  # its robots.txt Crawl-delay, say
    assert f.pop() is None
    clock.advance(0.5)
    f.sent("a", clock())
    clock.advance(1.5)
    assert f.pop() is None
    clock.advance(0.5)
    assert f.pop() == ("a", "a1")


def test_a_request_sent_again_moves_the_clock_to_the_later_send() -> None:
    # aiohttp sends a GET again on a fresh connection when a keep-alive one was dead.
    f, clock = make_sending(per_host=2, delay=1.0)
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    f.sent("a", clock())
    clock.advance(0.25)
    f.resent("a", clock())
    clock.advance(0.875)
    assert f.pop() is None
    assert f.wait_time() == 0.125
    clock.advance(0.125)
    assert f.pop() == ("a", "a1")


def test_host_send_reports_the_first_send_then_later_ones_as_resends() -> None:
    f, clock = make_sending(per_host=2, delay=1.0)
    woken: list[bool] = []
    f.push("a", "a0")
    f.push("a", "a1")
    assert f.pop() == ("a", "a0")
    sending = HostSend(f, "a", lambda: woken.append(True))
    assert not sending.sent
    sending()
    assert sending.sent and woken == [True]  # a1 may go out once the gap has run
    clock.advance(0.5)
    sending()  # the retry on a fresh connection
    assert woken == [True]
    clock.advance(0.75)
    assert f.pop() is None  # a second after the first send, not after the second
    clock.advance(0.25)
    assert f.pop() == ("a", "a1")
    f.release("a", sent=sending.sent)
    assert f.in_flight == 1
