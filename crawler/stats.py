"""`crawl stats`: what a state file says about its crawl, as text or JSON."""

from __future__ import annotations

import json
import time
from typing import Any

from storage import Store


async def gather(store: Store, failures: int = 10) -> dict[str, Any]:
    counts = await store.counts()
    runs = await store.runs()
    return {
        "spider": await store.spider_name(),
        "requests": {
            "queued": counts.queued,
            "in_flight": counts.leased,
            "done": counts.done,
            "failed": counts.failed,
        },
        "items": counts.items,
        "counters": dict(counts.counters),
        "complete": counts.queued + counts.leased == 0,
        "runs": [
            {"id": r.id, "started": r.started, "ended": r.ended, "status": r.status,
             "seconds": round((r.ended or time.time()) - r.started, 3)}
            for r in runs
        ],
        "recent_failures": [
            {"url": f.url, "status": f.status, "error": f.error}
            for f in await store.failures(failures)
        ],
    }


def render_json(stats: dict[str, Any]) -> str:
    return json.dumps(stats, indent=2, ensure_ascii=False)


def render_text(stats: dict[str, Any]) -> str:
    req = stats["requests"]
    state = "complete" if stats["complete"] else "unfinished"
    lines = [
        f"spider      {stats['spider']}  ({state})",
        f"done        {req['done']:,}",
        f"queued      {req['queued']:,}",
        f"in flight   {req['in_flight']:,}",
        f"failed      {req['failed']:,}",
        f"items       {stats['items']:,}",
    ]
    for name, value in sorted(stats["counters"].items()):
        lines.append(f"{name.replace('_', ' '):<22}{value:,}")
    lines.append("")
    lines.append("runs")
    for run in stats["runs"]:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started"]))
        lines.append(f"  #{run['id']:<4} {started}  {run['seconds']:>9.1f}s  {run['status']}")
    if stats["recent_failures"]:
        lines.append("")
        lines.append("recent failures")
        for f in stats["recent_failures"]:
            lines.append(f"  {f['url']}\n      {f['error']}")
    return "\n".join(lines)
