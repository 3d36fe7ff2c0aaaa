"""The politeness checker over a server's request log (tests/politeness.py), on synthetic
logs: it must pass a polite log and catch an overlap, a short gap, a Crawl-delay ignored and
a refetch, naming the host and the times."""

from __future__ import annotations

import io

import pytest

from tests.politeness import (
    Hit,
    assert_fetched_once,
    assert_polite,
    check,
    parse,
)
from tests.sites.manyhosts import RequestLog, Spec


def _hits(host: str, *spans: tuple[float, float], path: str = "/p/{}.html") -> list[Hit]:
    return [Hit(a, b, host, path.format(i)) for i, (a, b) in enumerate(spans)]


def test_a_polite_log_passes() -> None:
    hits = (_hits("a.test", (0.0, 0.3), (0.1, 0.2), (0.2, 0.5), (0.35, 0.4))
            + _hits("b.test", (0.0, 1.0), (0.1, 1.0)))
    report = check(hits, per_host=2, delay=0.1)
    assert_polite(report)
    assert report.hosts["a.test"].peak == 2
    assert report.hosts["a.test"].min_gap == pytest.approx(0.1)
    assert report.hosts["b.test"].requests == 2


def test_an_overlap_over_the_limit_is_caught_with_host_and_times() -> None:
    hits = _hits("a.test", (1.0, 1.5), (1.2, 1.3), (2.0, 2.1)) + _hits("b.test", (1.0, 2.0))
    report = check(hits, per_host=1, delay=0.1)
    with pytest.raises(AssertionError) as failed:
        assert_polite(report)
    message = str(failed.value)
    assert "a.test: 2 requests in flight at once (per-host limit 1)" in message
    assert "/p/0.html [1.0000, 1.5000)" in message and "/p/1.html [1.2000, 1.3000)" in message
    assert "b.test" not in message


def test_three_at_once_break_a_limit_of_two_and_back_to_back_is_no_overlap() -> None:
    assert check(_hits("a.test", (0, 1), (1, 2), (2, 3)), per_host=1, delay=1).violations() == []
    report = check(_hits("a.test", (0, 1), (0.2, 1), (0.4, 0.5)), per_host=2, delay=0.2)
    assert report.hosts["a.test"].peak == 3
    assert "3 requests in flight at once (per-host limit 2)" in "\n".join(report.violations())


def test_a_short_gap_is_caught_with_host_and_times() -> None:
    hits = _hits("c.test", (5.0, 5.01), (5.2, 5.21), (5.23, 5.24))
    report = check(hits, per_host=4, delay=0.1)
    assert report.hosts["c.test"].min_gap == pytest.approx(0.03)
    with pytest.raises(AssertionError) as failed:
        assert_polite(report)
    assert ("c.test: starts 0.0300 s apart (delay 0.1 s): /p/1.html [5.2000, 5.2100) then "
            "/p/2.html [5.2300, 5.2400)") in str(failed.value)


def test_the_tolerance_forgives_a_little_and_no_more() -> None:
    hits = _hits("a.test", (0.0, 0.01), (0.098, 0.1))
    assert_polite(check(hits, per_host=1, delay=0.1, tolerance=0.005))
    assert check(hits, per_host=1, delay=0.1, tolerance=0.001).violations()


def test_crawl_delay_holds_after_a_request_started_once_robots_txt_was_answered() -> None:
    robots = Hit(0.0, 0.05, "a.test", "/robots.txt")
    # The gap after robots.txt itself only follows the delay (its answer was not known when
    # the gate was set); the gap after the next request must follow the Crawl-delay.
    polite = [robots, *_hits("a.test", (0.1, 0.12), (0.6, 0.62))]
    assert_polite(check(polite, per_host=1, delay=0.1, crawl_delays={"a.test": 0.5}))
    rude = [robots, *_hits("a.test", (0.1, 0.12), (0.3, 0.32))]
    report = check(rude, per_host=1, delay=0.1, crawl_delays={"a.test": 0.5})
    assert report.violations() == [
        "a.test: starts 0.2000 s apart (delay 0.5 s): /p/0.html [0.1000, 0.1200) then "
        "/p/1.html [0.3000, 0.3200)"]
    # Another host's Crawl-delay does not apply.
    assert_polite(check(rude, per_host=1, delay=0.1, crawl_delays={"b.test": 0.5}))


def test_refetches_are_counted_and_robots_txt_apart() -> None:
    hits = [Hit(0, 1, "a.test", "/"), Hit(2, 3, "a.test", "/"), Hit(4, 5, "a.test", "/x"),
            Hit(0, 1, "a.test", "/robots.txt"), Hit(6, 7, "a.test", "/robots.txt")]
    report = check(hits, per_host=1, delay=0)
    assert report.refetched == {"http://a.test/": 2}
    assert report.robots == {"a.test": 2}
    want = {"http://a.test/", "http://a.test/x"}
    with pytest.raises(AssertionError, match=r"1 URL\(s\) fetched more than once"):
        assert_fetched_once(report, want)
    assert_fetched_once(report, want, may_refetch={"http://a.test/"})
    with pytest.raises(AssertionError, match=r"1 URL\(s\) never fetched.*'http://a.test/y'"):
        assert_fetched_once(report, want | {"http://a.test/y"}, may_refetch=want)
    with pytest.raises(AssertionError, match=r"1 unexpected, e.g. \['http://a.test/x'\]"):
        assert_fetched_once(report, {"http://a.test/"}, may_refetch=want)
    thrice = check([*hits, Hit(8, 9, "a.test", "/")], per_host=1, delay=0)
    with pytest.raises(AssertionError, match="fetched more than once"):
        assert_fetched_once(thrice, want, may_refetch=want)


def test_the_sites_log_lines_parse_back_and_a_partial_last_line_is_left_out() -> None:
    out = io.StringIO()
    log = RequestLog(out)
    log.header(Spec(hosts=20, crawl_delay=0.3))
    log.write(1.5, 1.75, "h0.test", "/p/1.html", 200)
    log.write(2.0, 2.5, "h1.test", "/robots.txt", 0)
    text = out.getvalue() + "3.0\t3."  # a line being written
    parsed = parse(io.StringIO(text).readlines())
    assert parsed.hits == [Hit(1.5, 1.75, "h0.test", "/p/1.html", 200),
                           Hit(2.0, 2.5, "h1.test", "/robots.txt", 0)]
    assert parsed.crawl_delays == {"h0.test": 0.3, "h10.test": 0.3}
    assert parsed.header["hosts"] == 20


def test_a_short_gap_after_a_request_stamped_in_a_server_stall_is_counted_apart() -> None:
    # a.test/p/0 was stamped at 1.04, inside a stall from 1.0: it may have arrived at 1.0,
    # 0.1 s before the next one, so that gap is unproven; b.test's is not explained by it.
    hits = (_hits("a.test", (1.04, 1.05), (1.1, 1.2))
            + _hits("b.test", (3.0, 3.01), (3.05, 3.06)))
    report = check(hits, per_host=1, delay=0.1, stalls=[(1.0, 1.039)])
    assert report.unproven == 1
    assert [line.split(":")[0] for line in report.violations()] == ["b.test"]
    # A stall too short to account for the whole shortfall proves nothing away.
    assert check(hits, per_host=1, delay=0.1, stalls=[(1.03, 1.039)]).unproven == 0
    assert len(check(hits, per_host=1, delay=0.1, stalls=[(1.03, 1.039)]).violations()) == 2


def test_stall_lines_parse() -> None:
    out = io.StringIO()
    log = RequestLog(out)
    log.header(Spec(hosts=2))
    log.stall(1.0, 1.25)
    log.write(1.5, 1.75, "h0.test", "/", 200)
    parsed = parse(io.StringIO(out.getvalue()).readlines())
    assert parsed.stalls == [(1.0, 1.25)]
    assert len(parsed.hits) == 1
