"""`crawl stats`: what a state file says about its crawl, as tables or JSON.

Crawl-wide figures (requests by state, status codes, kinds of failure) are counted from the
requests themselves; speed, timings, hosts, connections and DNS come from the statistics each
run stores every few seconds and when it ends.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from crawler import settings
from crawler.cli import running
from crawler.cli.exits import EXIT_OK
from crawler.config import CrawlConfig
from crawler.engine.state import open_state
from crawler.model.pipelines import DROPPED
from crawler.observe import report
from crawler.observe.logs import terminal_safe
from storage import HostStates, ProcessRecord, RunRecord, Store, is_postgres

HOST_ROWS = 15
LEFT = ("status", "error", "", "host", "state", "holder")  # columns of words
# How a run whose process died ends up stored: marked by the next run, or still "running".
GONE = ("running", "crashed")


def command(args: argparse.Namespace) -> int:
    """`crawl stats STATE`: what the state file says, as tables or JSON."""
    return running.run(_stats(args), "asyncio")


async def _stats(args: argparse.Namespace) -> int:
    store = await open_state(args.state, readonly=True)
    try:
        data = await gather(store, failures=args.failures)
    finally:
        await store.close()
    data["state_file"] = store.location if is_postgres(args.state) else args.state
    data["read_at"] = time.time()
    if args.json:
        print(render_json(data))
    else:
        render_text(data, sys.stdout)
    return EXIT_OK


async def gather(store: Store, failures: int = 10) -> dict[str, Any]:
    counts = await store.counts()
    breakdown = await store.breakdown()
    live = await store.live()
    records = await store.runs()
    processes = await store.processes()
    alive = {p.run for p in processes if p.live}
    runs = [_run(r, live=r.id in alive) for r in records]
    return {
        "spider": await store.spider_name(),
        "running": live,
        "processes": [_process(p) for p in processes],
        "requests": {
            # The leases of a run that is gone are not in flight: the next run queues them.
            "queued": counts.queued + (0 if live else counts.leased),
            "in_flight": counts.leased if live else 0,
            "done": counts.done,
            "failed": counts.failed,
        },
        "items": counts.items,
        "counters": {name: n for name, n in counts.counters.items()
                     if not name.startswith(DROPPED)},
        # Items the spider's pipelines left out, by the reason they gave (DropItem(reason)).
        "dropped_items": {name.removeprefix(DROPPED): n
                          for name, n in counts.counters.items() if name.startswith(DROPPED)},
        "complete": counts.queued + counts.leased == 0,
        "statuses": {str(k): v for k, v in breakdown.statuses.items()},
        "failures_by_kind": dict(breakdown.errors),
        "runs": runs,
        "hosts": _merge_hosts(runs)[:HOST_ROWS],
        "host_states": _host_states(await store.host_states(HOST_ROWS)),
        "recent_failures": [
            # "kind: details", as the failure was logged; the kind alone too, for scripts.
            {"url": f.url, "status": f.status, "kind": f.kind,
             "error": ": ".join(part for part in (f.kind, f.error) if part) or None}
            for f in await store.failures(failures)
        ],
    }


def _run(record: RunRecord, *, live: bool) -> dict[str, Any]:
    """A run as stored; one whose process is gone (it never recorded its end) is shown as
    killed, ended when it was last seen: its last saved figures, or its start."""
    stats = json.loads(record.stats) if record.stats else None
    status, ended = record.status, record.ended
    if ended is None and not live and status in GONE:
        status = "killed"
        ended = (stats or {}).get("saved_at") or record.started
    return {
        "id": record.id, "started": record.started, "ended": ended,
        "status": status,
        "seconds": round((ended or time.time()) - record.started, 3),
        "config": json.loads(record.config),
        "stats": stats,
    }


def _process(p: ProcessRecord) -> dict[str, Any]:
    return {"run": p.run, "host": p.hostname, "pid": p.pid, "started": p.started,
            "last_seen": p.last_seen, "seen_ago": _round(p.seen_ago), "status": p.status,
            "pages": p.pages, "leases": p.leases}


def _host_states(found: HostStates | None) -> dict[str, Any] | None:
    """The hosts of a shared crawl by state (None for a store with no per-host state)."""
    if found is None:
        return None
    return {
        **{state.value: n for state, n in found.states.items()},
        "total": sum(found.states.values()),
        "leased_by": {str(run): n for run, n in sorted(found.holders.items())},
        "top": [{"host": h.host, "state": h.state.value, "queued": h.queued,
                 "in_flight": h.in_flight, "done": h.done, "failed": h.failed,
                 "holder": h.holder, "gate": _round(h.gate)} for h in found.top],
    }


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _merge_hosts(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each host's figures over every run, the most requested first."""
    merged: dict[str, dict[str, Any]] = {}
    for run in runs:
        for row in (run["stats"] or {}).get("hosts", []):
            into = merged.setdefault(row["host"], {"host": row["host"], "requests": 0,
                                                   "errors": 0, "bytes": 0,
                                                   "avg_seconds": None})
            into["requests"] += row["requests"]
            into["errors"] += row["errors"]
            into["bytes"] += row["bytes"]
            # The latest run's recent average is the one that says how the host is now.
            if row["avg_seconds"] is not None:
                into["avg_seconds"] = row["avg_seconds"]
    return sorted(merged.values(), key=lambda h: (-h["requests"], h["host"]))


def render_json(stats: dict[str, Any]) -> str:
    return json.dumps(stats, indent=2, ensure_ascii=False)


def render_text(stats: dict[str, Any], out: TextIO) -> None:
    console = Console(file=out, highlight=False, width=max(100, Console(file=out).width))
    console.print(f"[bold]{escape(stats['spider'])}[/bold] crawl in "
                  f"{escape(stats.get('state_file', '?'))}: "
                  f"{_state(stats)}", soft_wrap=True)
    shared = stats.get("host_states") is not None
    if shared:  # many processes: who they are first, then what they did together
        _section(console, "processes", _processes(stats["processes"]))
        console.print("\n[bold]totals[/bold]")
    console.print(_summary(stats))
    if shared:
        _section(console, _host_line(stats["host_states"], stats["processes"]),
                 _host_table(stats["host_states"]["top"], stats["processes"]))
    latest = next((r for r in reversed(stats["runs"]) if r["stats"]), None)
    sections = [
        ("done requests by HTTP status", _counts("status", stats["statuses"])),
        ("failed requests by kind of error", _counts("kind", stats["failures_by_kind"])),
        ("items dropped by the pipelines, by reason",
         _counts("reason", stats["dropped_items"], "items")),
        ("runs", _runs(stats["runs"])),
        (f"run #{latest['id']}" if latest else "", _latest(latest)),
        ("hosts (all runs, most requested first)", _hosts(stats["hosts"])),
        ("recent failures", _failures(stats["recent_failures"])),
    ]
    for title, table in sections:
        _section(console, title, table)


def _section(console: Console, title: str, table: Table | None) -> None:
    if table is not None:
        console.print(f"\n[bold]{escape(title)}[/bold]", soft_wrap=True)
        console.print(table)


def _processes(processes: list[dict[str, Any]]) -> Table:
    table = _table("#", "host", "pid", "started", "last seen", "status", "pages", "leases")
    for p in processes:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["started"]))
        table.add_row(str(p["run"]), _plain(p["host"]), str(p["pid"]), started,
                      _ago(p["seen_ago"]), p["status"], _num(p["pages"]), _num(p["leases"]))
    return table


def _ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{report.duration(max(0.0, seconds))} ago"


def _holder(run: int | None, processes: list[dict[str, Any]]) -> str:
    """A run as `#3 (box:1234)`: the processes table's number, where it runs."""
    if run is None:
        return "-"
    p = next((p for p in processes if p["run"] == run), None)
    return f"#{run}" if p is None else f"#{run} ({p['host']}:{p['pid']})"


def _host_line(states: dict[str, Any], processes: list[dict[str, Any]]) -> str:
    by = ", ".join(f"{_holder(int(run), processes)} {n:,}"
                   for run, n in states["leased_by"].items())
    return (f"hosts: {states['total']:,} · {states['leased']:,} leased"
            + (f" ({by})" if by else "")
            + f" · {states['waiting']:,} waiting on their gate · {states['ready']:,} ready"
            f" · {states['done']:,} done")


def _host_table(top: list[dict[str, Any]], processes: list[dict[str, Any]]) -> Table | None:
    if not top:
        return None
    table = _table("host", "state", "queued", "in flight", "done", "failed", "holder",
                   "gate opens in")
    for h in top:
        table.add_row(_plain(h["host"]), h["state"], f"{h['queued']:,}", f"{h['in_flight']:,}",
                      f"{h['done']:,}", f"{h['failed']:,}", _holder(h["holder"], processes),
                      report.duration(h["gate"]) if h["gate"] else "open")
    return table


def _summary(stats: dict[str, Any]) -> Table:
    req = stats["requests"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(justify="right")
    for name in ("done", "queued", "in_flight", "failed"):
        grid.add_row(name.replace("_", " "), f"{req[name]:,}")
    grid.add_row("items", f"{stats['items']:,}")
    if stats["dropped_items"]:
        grid.add_row("dropped items", f"{sum(stats['dropped_items'].values()):,}")
    for name, value in sorted(stats["counters"].items()):
        grid.add_row(name.replace("_", " "), f"{value:,}")
    return grid


def _state(stats: dict[str, Any]) -> str:
    runs = stats["runs"]
    last = runs[-1] if runs else None
    now = stats.get("read_at", time.time())
    if last is not None and stats["running"]:
        saved = (last["stats"] or {}).get("saved_at")
        alive = sum(1 for p in stats.get("processes", ()) if p["status"] == "running")
        if alive > 1:
            return f"running ({alive} processes)"
        return f"running; figures from {report.duration(now - (saved or last['started']))} ago"
    where = "complete" if stats["complete"] else "unfinished"
    if last is not None and last["status"] == "killed":
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["ended"]))
        return (f"{where}; its last run was killed, last seen {seen} "
                f"({report.duration(now - last['ended'])} ago), figures as of then")
    return where


def _counts(key: str, counts: dict[str, int], what: str = "requests") -> Table | None:
    if not counts:
        return None
    table = _table(key, what)
    for name, n in counts.items():
        table.add_row(_plain(name), f"{n:,}")
    return table


def _runs(runs: list[dict[str, Any]]) -> Table:
    table = _table("#", "started", "time", "status", "pages", "pages/s", "failed",
                   "retried", "items")
    for run in runs:
        s = run["stats"] or {}
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started"]))
        table.add_row(str(run["id"]), started, report.duration(run["seconds"]), run["status"],
                      _num(s.get("pages")), _num(s.get("rate"), ".1f"), _num(s.get("failed")),
                      _num(s.get("retried")), _num(s.get("items")))
    return table


def _latest(run: dict[str, Any] | None) -> Table | None:
    if run is None:
        return None
    s = run["stats"]
    t = s["timings"]
    grid = _table("", "")
    grid.add_row("response times", f"mean {report.duration(t['mean'])} · p50 "
                 f"{report.duration(t['p50'])} · p95 {report.duration(t['p95'])} · max "
                 f"{report.duration(t['max'])} ({t['count']:,} responses)")
    grid.add_row("status codes", report.counts({int(k): v for k, v in s["statuses"].items()}))
    grid.add_row("fetch errors", report.counts(s["errors"]) if s["errors"] else "none")
    pool = s.get("pool")
    if pool:
        grid.add_row("connections", f"{pool['created']:,} opened · {pool['reused']:,} reused"
                     f" · {_num(pool['in_use'])} in use · {_num(pool['idle'])} idle")
        grid.add_row("dns", f"{pool['dns_misses']:,} lookups "
                     f"({report.duration(pool['dns_seconds'])}) · {pool['dns_hits']:,} "
                     "cache hits")
    config = run["config"]
    grid.add_row("settings", " · ".join(f"{k} {v}" for k, v in config.items()
                                        if k in _SHOWN_SETTINGS and v is not None))
    return grid


_SHOWN_SETTINGS = settings.names(CrawlConfig, shown=True)


def _hosts(hosts: list[dict[str, Any]]) -> Table | None:
    if not hosts:
        return None
    table = _table("host", "requests", "errors",
                   "bytes", "avg time")
    for h in hosts:
        table.add_row(_plain(h["host"]), f"{h['requests']:,}", f"{h['errors']:,}",
                      report.size(h["bytes"]), report.duration(h["avg_seconds"]))
    return table


def _failures(failures: list[dict[str, Any]]) -> Table | None:
    if not failures:
        return None
    table = _table("url", "error")
    for f in failures:
        table.add_row(_plain(f["url"]), _plain(f["error"] or ""))
    return table


def _table(*columns: str) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False, show_header=any(columns))
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 or name in LEFT
                         else "right", overflow="fold")
    return table


def _plain(text: str) -> Text:
    """A cell holding a site's text (a drop reason, an error quoting a page): shown as it
    is, not read as rich markup ("[/x]" would end the table) nor as terminal escapes."""
    return Text(terminal_safe(text))


def _num(value: Any, spec: str = ",") -> str:
    return "-" if value is None else format(value, spec)
