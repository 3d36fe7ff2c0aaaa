"""Figures in words: durations, sizes and the one-line progress report of a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crawler.observe.metrics import PoolStats, SharedTotals, Snapshot


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def counts(mapping: Mapping[Any, int], limit: int = 6) -> str:
    """`200 1,234 · 404 5`: the most frequent first."""
    top = sorted(mapping.items(), key=lambda kv: -kv[1])[:limit]
    text = " · ".join(f"{key} {n:,}" for key, n in top)
    rest = sum(mapping.values()) - sum(n for _, n in top)
    return text + (f" · others {rest:,}" if rest else "") if text else "none"


def maybe(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def pool_line(pool: PoolStats | None) -> str:
    if pool is None:
        return "not open"
    line = (f"{maybe(pool.in_use)} in use · {maybe(pool.idle)} idle · "
            f"{maybe(pool.waiting)} waiting · {pool.created:,} opened · {pool.reused:,} reused")
    return line


def dns_line(pool: PoolStats | None) -> str:
    if pool is None:
        return "-"
    line = (f"{pool.dns_misses:,} lookups ({duration(pool.dns_seconds)}) · "
            f"{pool.dns_hits:,} cache hits")
    if pool.process_sockets is not None:
        line += f" · process holds {pool.process_sockets:,} sockets"
    return line


def shared_line(t: SharedTotals) -> str:
    """All the processes of a shared crawl together: `3 running · 12,345 done · ...`."""
    return (f"{t.processes:,} running · {t.done:,} done · {t.queued:,} queued · "
            f"{t.in_flight:,} in flight · {t.failed:,} failed · {t.items:,} items")


def progress_line(s: Snapshot) -> str:
    """One compact line: what a log collector or a redirected stderr gets every few seconds."""
    parts = [f"{duration(s.elapsed)}", f"{s.pages:,} pages ({s.recent_rate:,.1f}/s now, "
             f"{s.rate:,.1f}/s avg)"]
    if s.crawl is not None:
        parts.append(f"{s.crawl.done:,} done {s.crawl.queued:,} queued {s.crawl.failed:,} "
                     f"failed")
    parts.append(f"{s.in_flight} in flight {s.retried:,} retries {s.items:,} items")
    if s.shared is not None:
        t = s.shared
        parts.append(f"all processes: {t.processes} running {t.done:,} done {t.queued:,} "
                     f"queued {t.in_flight:,} in flight")
    if s.pool is not None:
        parts.append(f"sockets {maybe(s.pool.in_use)} used {maybe(s.pool.idle)} idle, "
                     f"dns {s.pool.dns_misses}/{s.pool.dns_hits + s.pool.dns_misses} missed")
    if s.busiest and s.busiest[0].in_flight:
        top = s.busiest[0]
        parts.append(f"busiest {top.host} ({top.in_flight} in flight, {top.queued:,} queued)")
    if s.eta is not None:
        parts.append(f"eta {duration(s.eta)}")
    return "  ".join(parts)
