"""The run's counters and the figures derived from them, on a clock the test moves."""

from __future__ import annotations

import json

import pytest

from crawler.observe import metrics
from crawler.observe.metrics import CrawlTotals, HostView, Metrics, Snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _snap(m: Metrics, crawl: CrawlTotals | None = None, budget: int | None = None,
          live: tuple[HostView, ...] = ()) -> Snapshot:
    return m.snapshot(spider="t", state="running", crawl=crawl, live_hosts=live, pool=None,
                      page_budget=budget)


def test_recent_rate_follows_the_last_seconds_and_average_the_whole_run() -> None:
    clock = Clock()
    m = Metrics(clock, lambda: 0.0)
    for _ in range(30):  # 30 s at 10 pages/s, then 10 s at 2 pages/s
        for _ in range(10):
            m.page()
            clock.now += 0.1
    for _ in range(10):
        for _ in range(2):
            m.page()
            clock.now += 0.5
    s = _snap(m)
    assert s.pages == 320
    assert s.rate == pytest.approx(320 / 40)
    assert s.recent_rate == pytest.approx(2.0, abs=0.25)


def test_timings_and_per_host_figures() -> None:
    m = Metrics(Clock(), lambda: 0.0)
    for i in range(100):
        m.answered("fast:80", 200, 1000, 0.01 * (i % 10 + 1))  # 10..100 ms
    m.answered("slow:80", 503, 10, 2.0)
    m.fetch_failed("slow:80", "timeout", 3.0)
    t = m.timings()
    assert t.count == 102 and t.max == 3.0
    assert t.p50 == pytest.approx(0.06) and t.p95 == pytest.approx(0.10)  # 102 samples
    assert m.statuses == {200: 100, 503: 1} and m.errors == {"timeout": 1}
    assert m.bytes == 100_010
    slow = m.hosts["slow:80"]
    assert (slow.requests, slow.errors) == (2, 2)  # a 503 and a timeout
    assert m.hosts["fast:80"].errors == 0
    live = (HostView("fast:80", 1, 5, 0.0), HostView("idle:80", 0, 0, 0.5),
            HostView("slow:80", 2, 0, 4.0))
    s = _snap(m, live=live)
    assert [r.host for r in s.busiest] == ["slow:80", "fast:80", "idle:80"]
    assert [r.host for r in s.slowest] == ["slow:80", "fast:80"]
    assert s.slowest[0].delay == 4.0 and s.slowest[0].in_flight == 2
    assert [h["host"] for h in m.host_table(1)] == ["fast:80"]


def test_eta_from_the_page_limit() -> None:
    clock = Clock()
    m = Metrics(clock, lambda: 0.0)
    for _ in range(100):
        m.page()
        clock.now += 0.1  # 10 pages/s
    crawl = CrawlTotals(done=100, queued=5000, failed=0, items=0, skipped=0)
    assert _snap(m, crawl, budget=400).eta == pytest.approx(30, rel=0.1)


def test_eta_only_while_the_queue_shrinks() -> None:
    clock = Clock()
    m = Metrics(clock, lambda: 0.0)

    def at(queued: int) -> float | None:
        for _ in range(10):
            m.page()
            clock.now += 0.1
        return _snap(m, CrawlTotals(0, queued, 0, 0, 0)).eta

    growing = [at(100 + 50 * i) for i in range(40)]
    assert all(eta is None for eta in growing)  # still discovering: no end in sight
    shrinking = [at(2000 - 10 * i) for i in range(40)]
    # 10 fewer queued a second: the last 1,610 take about 161 s.
    assert shrinking[-1] == pytest.approx(1610 / 10, rel=0.05)
    assert shrinking[0] is None  # not enough history yet after the turn


def test_no_eta_once_stopped() -> None:
    m = Metrics(Clock(), lambda: 0.0)
    m.page()
    s = m.snapshot(spider="t", state="ended", crawl=CrawlTotals(1, 0, 0, 0, 0),
                   live_hosts=(), pool=None, page_budget=10)
    assert s.eta is None


def test_snapshot_is_plain_json() -> None:
    m = Metrics(Clock(), lambda: 123.0)
    m.answered("h:80", 200, 5, 0.1)
    m.page()
    data = json.loads(json.dumps(_snap(m, CrawlTotals(1, 2, 3, 4, 5)).to_dict()))
    assert data["statuses"] == {"200": 1}
    assert data["crawl"] == {"done": 1, "queued": 2, "failed": 3, "items": 4, "skipped": 5}
    assert data["started_at"] == 123.0
    assert data["slowest"][0]["host"] == "h:80"


def test_figures_are_kept_for_a_bounded_number_of_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_HOSTS", 100)
    m = Metrics(Clock(), lambda: 0.0)
    for _ in range(5):
        m.answered("busy:80", 200, 1, 0.01)
    for i in range(1000):
        m.answered(f"h{i}:80", 200, 1, 0.01)
    assert len(m.hosts) <= 100
    assert m.hosts["busy:80"].requests == 5  # the busiest stay
    assert m.statuses[200] == 1005  # the totals lose nothing
