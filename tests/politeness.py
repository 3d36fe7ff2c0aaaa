"""Politeness as a server saw it: read a request log (:mod:`tests.sites.manyhosts` writes one)
and check, per host, requests in flight at once and the gaps between request starts.

Pure code over records, no sockets: the unit tests feed it synthetic logs.

* Concurrency: intervals are half-open ``[start, end)`` (a request that ends at the moment
  another starts does not overlap it).  The server's interval lies inside the client's (it
  starts after the client sent, ends before the client has the answer), so an overlap seen
  here is an overlap the crawler made.
* Gaps: between consecutive request starts to one host, ``>= delay - tolerance``.  A host's
  robots.txt Crawl-delay (when larger) holds for the gap after a request that started once
  the host's first robots.txt answer was made and that is not itself a robots.txt fetch: a
  crawler sets a host's gate when it starts a request, so the gap after the robots.txt fetch
  (and any before it) can only follow the delay the crawler knew then.
* Server stalls: the site logs when its own event loop ran late; a request that arrived
  then was stamped late, which shortens the gap after it.  A short gap the stall could
  account for is counted apart (``unproven``), not as a violation.
* Refetches: a URL is ``http://<host><path>``; robots.txt is counted apart (a crawler process
  reads it once for itself, it is not stored in the crawl).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = "# manyhosts "
STALL = "# stall "
ROBOTS = "/robots.txt"
#: Slack for a gap measured on the server: the first request on a new connection reaches
#: the handler later (TCP connect), which shortens the gap after it by as much.
DEFAULT_TOLERANCE = 0.005
#: A request stamped this soon after a server stall ended may have waited in it.
STAMP_AFTER = 0.002


@dataclass(frozen=True, slots=True)
class Hit:
    start: float
    end: float
    host: str
    path: str
    status: int = 200

    @property
    def url(self) -> str:
        return f"http://{self.host}{self.path}"


Stall = tuple[float, float]  # the server's event loop ran late from .. to


@dataclass(frozen=True, slots=True)
class Log:
    header: dict[str, Any]
    hits: list[Hit]
    stalls: list[Stall] = field(default_factory=list)

    @property
    def crawl_delays(self) -> dict[str, float]:
        delays: dict[str, float] = self.header.get("crawl_delays", {})
        return delays


def parse(lines: Iterable[str]) -> Log:
    """A log's header and records; a last line without its newline (being written) is left
    out, as is anything after the header that is not a record."""
    header: dict[str, Any] = {}
    hits: list[Hit] = []
    stalls: list[Stall] = []
    for line in lines:
        if not line.endswith("\n"):
            break
        if line.startswith(HEADER):
            header = json.loads(line[len(HEADER):])
            continue
        if line.startswith(STALL):
            begin, end = line[len(STALL):].split("\t")
            stalls.append((float(begin), float(end)))
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) == 5:
            start, end, host, path, status = fields
            hits.append(Hit(float(start), float(end), host, path, int(status)))
    return Log(header, hits, stalls)


def read_log(path: str | Path) -> Log:
    with Path(path).open(encoding="utf-8", newline="\n") as lines:
        return parse(lines)


@dataclass(slots=True)
class HostFigures:
    host: str
    requests: int = 0
    peak: int = 0  # requests in flight at once, at the most
    peak_at: tuple[Hit, ...] = ()  # the requests in flight at that moment
    min_gap: float = float("inf")
    min_gap_pair: tuple[Hit, Hit] | None = None
    short_gaps: list[tuple[Hit, Hit, float]] = field(default_factory=list)  # (a, b, required)
    # Short gaps whose first request reached the server while its loop was stalled: its
    # stamp may be late by up to the stall, so the gap may have been long enough.
    unproven: list[tuple[Hit, Hit, float]] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    hosts: dict[str, HostFigures]
    fetched: Counter[str]  # URL -> times fetched (robots.txt left out)
    robots: Counter[str]  # host -> robots.txt fetches
    per_host: int
    delay: float

    @property
    def refetched(self) -> dict[str, int]:
        return {url: n for url, n in self.fetched.items() if n > 1}

    def violations(self) -> list[str]:
        """One line per host that broke a rule, naming the requests and their times."""
        lines: list[str] = []
        for figures in self.hosts.values():
            if figures.peak > self.per_host:
                what = ", ".join(_show(h) for h in figures.peak_at)
                lines.append(f"{figures.host}: {figures.peak} requests in flight at once "
                             f"(per-host limit {self.per_host}): {what}")
            for a, b, required in figures.short_gaps[:3]:
                lines.append(f"{figures.host}: starts {b.start - a.start:.4f} s apart "
                             f"(delay {required:g} s): {_show(a)} then {_show(b)}")
            if len(figures.short_gaps) > 3:
                lines.append(f"{figures.host}: {len(figures.short_gaps) - 3} more short gaps")
        return lines

    def summary(self) -> str:
        peak = max((f.peak for f in self.hosts.values()), default=0)
        gap = min((f.min_gap for f in self.hosts.values()), default=float("inf"))
        return (f"{sum(self.fetched.values())} page requests over {len(self.hosts)} hosts; "
                f"peak in flight to one host {peak} (limit {self.per_host}); smallest start "
                f"gap {gap:.4f} s (delay {self.delay:g} s); {len(self.refetched)} URLs fetched"
                f" more than once; {sum(self.robots.values())} robots.txt fetches; "
                f"{len(self.violations())} violation lines; {self.unproven} short gaps "
                "after a server stall")

    @property
    def unproven(self) -> int:
        return sum(len(f.unproven) for f in self.hosts.values())


def _show(hit: Hit) -> str:
    return f"{hit.path} [{hit.start:.4f}, {hit.end:.4f})"


def _peak(hits: list[Hit]) -> tuple[int, tuple[Hit, ...]]:
    events = [(h.start, 1, i) for i, h in enumerate(hits) if h.end > h.start]
    events += [(h.end, -1, i) for i, h in enumerate(hits) if h.end > h.start]
    events.sort(key=lambda e: (e[0], e[1]))  # at equal times, ends (-1) before starts (+1)
    active: set[int] = set()
    peak, at = 0, tuple[Hit, ...]()
    for _, delta, i in events:
        if delta > 0:
            active.add(i)
            if len(active) > peak:
                peak, at = len(active), tuple(hits[j] for j in sorted(active))
        else:
            active.discard(i)
    return peak, at


def _earliest(hit: Hit, stalls: Iterable[Stall]) -> float:
    """The earliest a request may have reached the server: the start of a stall its stamp
    falls in (or just after), else its stamp."""
    return min((begin for begin, end in stalls if begin <= hit.start <= end + STAMP_AFTER),
               default=hit.start)


def _gaps(figures: HostFigures, hits: list[Hit], *, delay: float, crawl_delay: float,
          tolerance: float, stalls: list[Stall]) -> None:
    answered = min((h.end for h in hits if h.path == ROBOTS), default=float("inf"))
    for a, b in itertools.pairwise(hits):
        gap = b.start - a.start
        if gap < figures.min_gap:
            figures.min_gap, figures.min_gap_pair = gap, (a, b)
        knew = a.path != ROBOTS and a.start >= answered
        required = max(delay, crawl_delay) if knew else delay
        if gap < required - tolerance:
            if b.start - _earliest(a, stalls) >= required - tolerance:
                figures.unproven.append((a, b, required))
            else:
                figures.short_gaps.append((a, b, required))


def check(hits: Iterable[Hit], *, per_host: int, delay: float,
          crawl_delays: Mapping[str, float] | None = None,
          tolerance: float = DEFAULT_TOLERANCE, stalls: Iterable[Stall] = ()) -> Report:
    """Per-host figures over every request in ``hits``, and the URLs fetched. A short gap
    after a request stamped during one of the server's ``stalls`` is counted apart, as
    unproven, when the stall could account for it."""
    stalls = sorted(stalls)
    by_host: defaultdict[str, list[Hit]] = defaultdict(list)
    fetched: Counter[str] = Counter()
    robots: Counter[str] = Counter()
    for hit in hits:
        by_host[hit.host].append(hit)
        if hit.path == ROBOTS:
            robots[hit.host] += 1
        else:
            fetched[hit.url] += 1
    report = Report({}, fetched, robots, per_host, delay)
    for host, group in by_host.items():
        group.sort(key=lambda h: h.start)
        figures = HostFigures(host, len(group))
        figures.peak, figures.peak_at = _peak(group)
        _gaps(figures, group, delay=delay, crawl_delay=(crawl_delays or {}).get(host, 0.0),
              tolerance=tolerance, stalls=stalls)
        report.hosts[host] = figures
    return report


def assert_polite(report: Report) -> None:
    """Fail naming every host that broke the per-host limit or the delay."""
    bad = report.violations()
    assert not bad, f"{len(bad)} politeness violation(s):\n" + "\n".join(bad[:40])


def assert_fetched_once(report: Report, expected: Iterable[str], *,
                        may_refetch: Iterable[str] = ()) -> None:
    """Every expected URL fetched, nothing else; a URL fetched twice only if allowed."""
    want, got = set(expected), set(report.fetched)
    missing, extra = sorted(want - got), sorted(got - want)
    assert not missing and not extra, (f"{len(missing)} URL(s) never fetched, e.g. "
                                       f"{missing[:5]}; {len(extra)} unexpected, e.g. {extra[:5]}")
    allowed = set(may_refetch)
    twice = {url: n for url, n in report.refetched.items() if url not in allowed or n > 2}
    assert not twice, (f"{len(twice)} URL(s) fetched more than once (or more than twice), "
                       f"e.g. {sorted(twice.items())[:5]}")
