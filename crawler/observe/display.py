"""How a running crawl shows itself: a live terminal panel (rich), or, when the output is not
a terminal, one compact log line every few seconds. The only module that draws with rich
while a crawl runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from crawler.observe import report
from crawler.observe.metrics import HostRow, Snapshot

REFRESH = 0.5  # seconds between two frames of the live display
HOST_ROWS = 5

status_log = logging.getLogger("crawler.status.report")


async def live(snapshot: Callable[[], Snapshot], console: Console) -> None:
    """Redraw the panel until cancelled. Frames are drawn from the event loop, not from
    rich's refresh thread: a snapshot reads state the workers change."""
    with Live(console=console, auto_refresh=False, redirect_stdout=False,
              redirect_stderr=True, transient=False) as display:
        try:
            while True:
                display.update(render(snapshot()), refresh=True)
                await asyncio.sleep(REFRESH)
        finally:
            # The last frame stays on screen, showing where the run ended.
            display.update(render(snapshot()), refresh=True)


async def log_lines(snapshot: Callable[[], Snapshot], every: float) -> None:
    """Log a progress line every `every` seconds until cancelled."""
    while True:
        await asyncio.sleep(every)
        s = snapshot()
        status_log.info("%s", report.progress_line(s),
                        extra={"event": "progress", "stats": s.to_dict()})


def render(s: Snapshot) -> RenderableType:
    return Group(_overview(s), _hosts("busiest hosts", s.busiest),
                 _hosts("slowest hosts", s.slowest))


def _overview(s: Snapshot) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    title = Text.assemble((s.spider, "bold"), f" · {s.state} · ",
                          (report.duration(s.elapsed), "bold"))
    if s.eta is not None:
        title.append(f" · about {report.duration(s.eta)} to go")
    grid.add_row("crawl", title)
    grid.add_row("speed", f"{s.recent_rate:,.1f} pages/s now · {s.rate:,.1f} average · "
                          f"{s.pages:,} pages this run · {report.size(s.bytes)}")
    if s.crawl is not None:
        c = s.crawl
        grid.add_row("requests", f"{c.done:,} done · {c.queued:,} queued · {s.in_flight} in flight"
                              f" · {c.failed:,} failed · {c.skipped:,} skipped · "
                              f"{c.items:,} items")
    if s.shared is not None:
        grid.add_row("all processes", report.shared_line(s.shared))
    grid.add_row("this run", f"{s.failed:,} failed · {s.retried:,} retried · "
                             f"{s.items:,} items")
    grid.add_row("status", report.counts(s.statuses))
    grid.add_row("errors", Text(report.counts(s.errors), style="red" if s.errors else ""))
    t = s.timings
    grid.add_row("response", f"mean {report.duration(t.mean)} · p50 {report.duration(t.p50)}"
                             f" · p95 {report.duration(t.p95)} · max {report.duration(t.max)}")
    grid.add_row("sockets", report.pool_line(s.pool))
    grid.add_row("dns", report.dns_line(s.pool))
    return grid


def _hosts(title: str, rows: tuple[HostRow, ...]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold cyan", box=None,
                  padding=(0, 1), show_edge=False)
    table.add_column("host", no_wrap=True, overflow="ellipsis", max_width=40)
    for name in ("in flight", "queued", "delay", "requests", "errors", "avg time"):
        table.add_column(name, justify="right")
    for row in rows[:HOST_ROWS]:
        table.add_row(row.host, f"{row.in_flight}", f"{row.queued:,}",
                      report.duration(row.delay) if row.delay else "0",
                      f"{row.requests:,}",
                      Text(f"{row.errors:,}", style="red" if row.errors else ""),
                      report.duration(row.avg_seconds))
    if not rows:
        table.add_row("-", "", "", "", "", "", "")
    return table
