"""Benchmark: N crawler processes on one crawl of the many-host site, politeness checked.

    python bench/processes.py --processes 1 2 4 [--state FILE | --state postgresql://...]
                              [--watch-name postgres] [--watch-pid PID] [--json]

For each N: starts the many-host site (``python -m tests.sites.manyhosts``, a process of its
own, default 200 hosts x 40 pages, 20-150 ms a page), then N ``crawl site`` processes with the
same ``--state`` and every host's root as start URLs (``--resolve '*.test:127.0.0.1'``).
The first one starts the crawl with ``--fresh``; the others start once the site has seen its
first request (so they join the crawl instead of racing to create it).  When all have exited:

* pages/s: page requests the site served (robots.txt left out) over the wall time from the
  first process's start to the last one's exit (Python's start-up included);
* CPU per page: the CPU (user + system) of all crawler processes, from the kernel's resource
  usage of waited-for children; the site's own CPU (all its ``--site-processes``) is shown
  apart, read from /proc: if it nears a core per site process, the site is the bottleneck;
* watched processes (``--watch-pid``, ``--watch-name`` matched against /proc/PID/comm, e.g.
  ``postgres``): their CPU over the run and its share of (crawlers + watched); one that
  ends during the run (a connection's server process) is counted in its parent's CPU of
  the children it waited for;
* politeness over the site's own log (tests/politeness.py): peak requests in flight to one
  host, the smallest gap between starts, violations (tolerance ``--tolerance``) and URLs
  fetched more than once; and over the crawlers' own (``--send-log``, the moment each
  request went out, on the same clock): the smallest gap between two sends to a host and
  how many fell short of its delay. On a machine the site shares with busy crawlers, the
  site stamps a request late by as long as it queued, so its gaps may look shorter than
  the ones the crawlers kept.

With the SQLite store only N=1 is meaningful: a second process on the same state file is
refused at once (the file is locked); the report shows each process's exit code and time.  The same
command measures N > 1 once ``--state postgresql://...`` exists (give the database's server
processes to ``--watch-name postgres``).  Without ``--state``, each N gets a new SQLite
file in a temporary folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

CHECKOUT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(CHECKOUT))

from tests.politeness import Report, check, read_log  # noqa: E402
from tests.sites import manyhosts  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, *, reaped: bool = False) -> float:
    """CPU seconds (user + system) a live process has used; 0 if it is gone. `reaped`: with
    that of its children it has waited for (a database server's ended connections)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    if reaped:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime: fields 16 and 17
    return used / TICKS


def family_cpu(pid: int) -> float:
    """CPU seconds of a live process and its live children (the site's server processes)."""
    total = proc_cpu(pid)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rpartition(")")[2].split()[1]) == pid:
                        total += proc_cpu(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return total


def named_pids(names: Iterable[str]) -> set[int]:
    wanted = set(names)
    pids: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() in wanted:
                        pids.add(int(entry))
            except OSError:
                continue
    return pids


@dataclass
class Watch:
    """CPU of other processes (a database's) over a run."""

    pids: Sequence[int]
    names: Sequence[str]
    start: dict[int, float] = field(default_factory=dict)

    def _now(self) -> dict[int, float]:
        # A server's connections come and go with the crawl processes: those that ended are
        # in their parent's reaped CPU, those alive in their own.
        pids = set(self.pids) | (named_pids(self.names) if self.names else set())
        return {pid: proc_cpu(pid, reaped=True) for pid in pids}

    def begin(self) -> None:
        self.start = self._now()

    def cpu(self) -> float:
        # Over every process seen at either end: one alive at the start and ended since is
        # in its parent's reaped CPU now, its own start taken off here.
        return sum(self._now().values()) - sum(self.start.values())


@dataclass
class Run:
    processes: int
    pages: int
    wall: float
    crawler_cpu: float
    site_cpu: float
    watched_cpu: float
    exits: list[int]
    ended: list[float]  # when each process exited, seconds after the first started
    refused: list[str]  # the last stderr line of each process that did not exit 0
    politeness: dict[str, Any]

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.wall if self.wall else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * self.crawler_cpu / max(self.pages, 1)

    @property
    def watched_share(self) -> float:
        total = self.crawler_cpu + self.watched_cpu
        return self.watched_cpu / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pages_per_second": round(self.pages_per_second, 1),
                "cpu_ms_per_page": round(self.cpu_ms_per_page, 3),
                "watched_share": round(self.watched_share, 3)}

    def report(self) -> str:
        p = self.politeness
        lines = [
            f"N={self.processes}: {self.pages:,} pages in {self.wall:.2f} s: "
            f"{self.pages_per_second:,.0f} pages/s; crawlers' CPU {self.crawler_cpu:.2f} s "
            f"= {self.cpu_ms_per_page:.2f} ms a page; site {self.site_cpu:.2f} s; "
            f"watched {self.watched_cpu:.2f} s ({self.watched_share:.0%} of crawlers+watched)",
            f"     politeness: peak in flight to a host {p['peak']} (limit {p['per_host']}), "
            f"smallest start gap {p['min_gap']:.4f} s (delay {p['delay']:g} s), "
            f"{p['violations']} violation lines, {p['refetched']} URLs fetched twice or more, "
            f"{p['robots']} robots.txt fetches",
            f"     as the crawlers sent them (--send-log): {p['sent']:,} requests, smallest "
            f"gap {p['sent_min_gap']:.4f} s, {p['sent_short']} short of their host's delay",
            f"     site's loop stalled {p['stalls']} times ({p['stalled']:.2f} s in all); "
            f"short gaps it could explain (not counted above): {p['unproven']}",
        ]
        lines.append(f"     processes exited {self.exits} at {self.ended} s")
        lines += [f"     exit {code}: {why}" for code, why in
                  zip([c for c in self.exits if c], self.refused, strict=True)]
        return "\n".join(lines)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _crawl_args(args: argparse.Namespace, server: manyhosts.Running, state: str,
                first: bool, sends: Path) -> list[str]:
    starts = [f"http://{host}:{server.port}/" for host in
              manyhosts.Spec(hosts=args.hosts).host_names()]
    return [sys.executable, "-m", "crawler.cli", "site", *starts, "--state", state,
            "--resolve", f"*.test:{server.address}", "--workers", str(args.workers),
            "--per-host", str(args.per_host), "--delay", str(args.delay), "--quiet",
            "--send-log", str(sends), *args.crawl_option, *(["--fresh"] if first else [])]


def sent_gaps(sends: Path, delay: float,
              crawl_delays: dict[str, float]) -> tuple[int, float, int]:
    """From the crawlers' own `--send-log` (every process's, one clock): the requests sent,
    the smallest gap between two sends to one host, and how many gaps fell short of the
    host's delay (the crawl's, or its Crawl-delay if longer)."""
    by_host: dict[str, list[float]] = {}
    for line in sends.read_text().splitlines():
        at, key, _ = line.split("\t")
        by_host.setdefault(key.rsplit(":", 1)[0], []).append(float(at))
    smallest, short = float("inf"), 0
    for host, times in by_host.items():
        times.sort()
        required = max(delay, crawl_delays.get(host, 0.0))
        for a, b in itertools.pairwise(times):
            smallest = min(smallest, b - a)
            short += b - a < required - 1e-6
    return sum(map(len, by_host.values())), smallest, short


def _wait_for_first_request(log: Path, first: subprocess.Popen[bytes], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not read_log(log).hits and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def _last_line(stream: IO[bytes]) -> str:
    stream.seek(0)
    lines = stream.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no message)"


@contextmanager
def _state(args: argparse.Namespace, n: int) -> Iterator[str]:
    if args.state:
        yield args.state
        return
    with tempfile.TemporaryDirectory(prefix="bench-processes-") as tmp:
        yield str(Path(tmp) / f"n{n}.crawl.db")


def _site_options(args: argparse.Namespace) -> list[str]:
    return ["--hosts", str(args.hosts), "--pages", str(args.pages),
            "--latency", f"{args.latency[0]}-{args.latency[1]}",
            "--crawl-delay", str(args.crawl_delay), "--processes", str(args.site_processes)]


def measure(args: argparse.Namespace, n: int, watch: Watch) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
        log = Path(tmp) / "requests.log"
        run = _run(args, n, watch, log)
        parsed = read_log(log)  # the site has stopped: every line is in
        sent, sent_gap, sent_short = sent_gaps(log.with_name("sends.log"), args.delay,
                                               parsed.crawl_delays)
    report = check(parsed.hits, per_host=args.per_host, delay=args.delay,
                   crawl_delays=parsed.crawl_delays, tolerance=args.tolerance,
                   stalls=parsed.stalls)
    run.pages = sum(report.fetched.values())
    run.politeness = {
        "peak": max((f.peak for f in report.hosts.values()), default=0),
        "per_host": args.per_host, "delay": args.delay,
        "min_gap": min((f.min_gap for f in report.hosts.values()), default=float("inf")),
        "min_gap_at": _smallest_gap(report),
        "violations": len(report.violations()), "refetched": len(report.refetched),
        "unproven": report.unproven, "stalls": len(parsed.stalls),
        "stalled": round(sum(b - a for a, b in parsed.stalls), 3),
        "robots": sum(report.robots.values()), "first_violations": report.violations()[:5],
        # The crawlers' own side (--send-log): the site's stamps are late by its queueing.
        "sent": sent, "sent_min_gap": sent_gap, "sent_short": sent_short,
    }
    return run


def _smallest_gap(report: Report) -> str:
    figures = min(report.hosts.values(), key=lambda f: f.min_gap, default=None)
    if figures is None or figures.min_gap_pair is None:
        return ""
    a, b = figures.min_gap_pair
    return f"{figures.host}: {a.path} [{a.start:.4f}, {a.end:.4f}) then {b.path} [{b.start:.4f}"


def _run(args: argparse.Namespace, n: int, watch: Watch, log: Path) -> Run:
    with ExitStack() as stack:
        server = stack.enter_context(manyhosts.running(_site_options(args), log))
        state = stack.enter_context(_state(args, n))
        errors = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(n)]
        site0, cpu0 = family_cpu(server.pid), _children_cpu()
        watch.begin()
        wall0 = time.perf_counter()
        sends = log.with_name("sends.log")
        procs = [subprocess.Popen(_crawl_args(args, server, state, True, sends),
                                  stdout=subprocess.DEVNULL, stderr=errors[0])]
        _wait_for_first_request(log, procs[0], 60)
        procs += [subprocess.Popen(_crawl_args(args, server, state, False, sends),
                                   stdout=subprocess.DEVNULL, stderr=errors[i])
                  for i in range(1, n)]
        exits, ended = _wait_all(procs, wall0)
        wall = time.perf_counter() - wall0
        crawler_cpu, watched = _children_cpu() - cpu0, watch.cpu()
        site_cpu = family_cpu(server.pid) - site0
        refused = [_last_line(e) for e, code in zip(errors, exits, strict=True) if code]
    return Run(n, 0, wall, crawler_cpu, site_cpu, watched, exits, ended, refused, {})


def _wait_all(procs: Sequence[subprocess.Popen[bytes]],
              since: float) -> tuple[list[int], list[float]]:
    """Exit codes, and when each process ended (seconds after `since`)."""
    ended: dict[int, float] = {}
    while len(ended) < len(procs):
        for i, proc in enumerate(procs):
            if i not in ended and proc.poll() is not None:
                ended[i] = round(time.perf_counter() - since, 2)
        time.sleep(0.01)
    return [proc.wait() for proc in procs], [ended[i] for i in range(len(procs))]


def _latency(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--processes", type=int, nargs="+", default=[1], metavar="N",
        help="crawler processes, one run each (default: 1)")
    add("--state", help="state file or postgresql:// URL shared by the processes (default: "
        "a new SQLite file per run)")
    add("--hosts", type=int, default=200)
    add("--pages", type=int, default=40, help="pages a host (default: 40)")
    add("--latency", type=_latency, default=(0.02, 0.15), metavar="LOW-HIGH")
    add("--crawl-delay", type=float, default=0.0, help="Crawl-delay of every 10th host")
    add("--site-processes", type=int, default=1, metavar="N",
        help="the site's server processes (default: 1); more when it cannot keep up")
    add("--workers", type=int, default=64, help="each process's --workers (default: 64)")
    add("--per-host", type=int, default=2)
    add("--delay", type=float, default=0.1)
    add("--tolerance", type=float, default=0.01,
        help="a start gap may come up this much short (default: 0.01 s)")
    add("--crawl-option", action="append", default=[], metavar="OPTION",
        help="pass this to every crawl process (e.g. --crawl-option=--max-pages=500)")
    add("--watch-pid", type=int, action="append", default=[], metavar="PID")
    add("--watch-name", action="append", default=[], metavar="NAME",
        help="count the CPU of processes with this name (/proc/PID/comm), e.g. postgres")
    add("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if any(n < 1 for n in args.processes):
        sys.exit("processes: --processes must be at least 1")
    path = os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))
    os.environ["PYTHONPATH"] = path  # the crawlers run this checkout's code
    watch = Watch(args.watch_pid, args.watch_name)
    runs = []
    for n in args.processes:
        run = measure(args, n, watch)
        runs.append(run)
        if not args.json:
            print(run.report(), flush=True)
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=2))


if __name__ == "__main__":
    main()
