"""Which crawl a state file holds, and whether a run may go on with it. Pure: no I/O.

A crawl's identity is what decides which pages it fetches: the spider (its name and its
class), the start URLs, the scope and the settings that change what is followed. It is kept
in the state file as JSON text. A run whose identity differs is refused, except where it
only widens the crawl on purpose (a deeper or no `max_depth`): those links were kept aside
(parked), so the crawl finds them without fetching anything twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from crawler import settings
from crawler.config import CrawlConfig
from crawler.model.loader import class_path
from crawler.urls.canon import CanonicalURL

VERSION = 1
START_URLS = "start_urls"
SPIDER_CLASS = "spider_class"
LISTED_URLS = 100  # more start URLs than this are kept as their number and a digest

SPIDER_ATTRIBUTES = ("allowed_hosts", "allow_subdomains", "allowed_ports", "html_only")
"""Spider attributes that change which pages are crawled; missing ones are left out."""

CRAWL_SETTINGS = settings.names(CrawlConfig, defines_crawl=True)
"""The `CrawlConfig` fields that change which pages are crawled (declared so with
`defines_crawl=True`; the others change how fast or how politely, and `max_pages` and
`max_links` are budgets)."""
SAFE_TO_CHANGE = ("allow_private",)
"""Recorded, but a resume may change them: they decide where the crawler may connect, not
which links it keeps (requests refused before can be retried with --retry-failed)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """How this run's identity stands to the stored one."""

    differences: tuple[str, ...]  # refused: each says what differs
    widenings: tuple[str, ...]  # allowed: each says what was widened

    @property
    def refused(self) -> bool:
        return bool(self.differences)


def of(spider: object, config: CrawlConfig,
       start_urls: Iterable[CanonicalURL]) -> dict[str, Any]:
    """The identity of a crawl of `spider` from canonical `start_urls` under `config`."""
    identity: dict[str, Any] = {
        "version": VERSION,
        "spider": getattr(spider, "name", ""),
        SPIDER_CLASS: class_path(type(spider)),
        START_URLS: _url_set(start_urls),
    }
    for name in SPIDER_ATTRIBUTES:
        if hasattr(spider, name):
            identity[name] = _plain(getattr(spider, name))
    for name in CRAWL_SETTINGS:
        identity[name] = _plain(getattr(config, name))
    return identity


def to_text(identity: Mapping[str, Any]) -> str:
    return json.dumps(identity, sort_keys=True, ensure_ascii=False)


def from_text(text: str) -> dict[str, Any]:
    """A stored identity; one that cannot be read counts as none (it is then replaced)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def compare(stored: Mapping[str, Any], current: Mapping[str, Any]) -> Comparison:
    """What differs between the file's crawl and this run's. A key only one side has (a
    setting this or an older version does not know) is not compared: this run's is kept."""
    differences: list[str] = []
    widenings: list[str] = []
    for key in sorted(set(stored) & set(current) - {"version"}):
        was, now = stored[key], current[key]
        if was == now:
            continue
        if key in SAFE_TO_CHANGE:
            widenings.append(f"{key} {_show(was)} -> {_show(now)}")
        elif key == "max_depth" and _deeper(was, now):
            widenings.append(f"max_depth {_show(was)} -> {_show(now)}")
        elif key == "max_depth":
            differences.append(f"max_depth: {_show(was)} in the file, {_show(now)} now "
                               "(a crawl may go deeper on resume, not shallower)")
        elif key == START_URLS:
            differences.append(f"start URLs: {_urls(was)} in the file; {_urls(now)} now")
        else:
            differences.append(f"{key}: {_show(was)} in the file, {_show(now)} now")
    return Comparison(tuple(differences), tuple(widenings))


def refusal(path: str, comparison: Comparison) -> str:
    """The message for a refused run: what differs, and the ways on."""
    lines = "\n".join(f"  - {d}" for d in comparison.differences)
    return (f"{path} holds another crawl than this command's; it differs in:\n{lines}\n"
            "To go on with the file's crawl, run it as it was started. To start over with "
            "this command's, add --fresh (the file's pages and items are discarded), or give "
            "another --state file. The file was left untouched.")


def _deeper(was: Any, now: Any) -> bool:
    if was is None:
        return False
    return now is None or (isinstance(now, int) and isinstance(was, int) and now > was)


def _url_set(urls: Iterable[str]) -> list[str] | str:
    ordered = sorted(set(urls))
    if len(ordered) <= LISTED_URLS:
        return ordered
    digest = hashlib.sha256("\n".join(ordered).encode()).hexdigest()[:16]
    return f"{len(ordered):,} URLs (sha256 {digest})"


def _urls(value: Any, shown: int = 3) -> str:
    if not isinstance(value, list):
        return str(value)
    if not value:
        return "none"
    more = f" and {len(value) - shown:,} more" if len(value) > shown else ""
    return " ".join(str(u) for u in value[:shown]) + more


def _plain(value: Any) -> Any:
    """A JSON value that compares equal for equal settings: collections of hosts, ports or
    patterns are sets, whatever their order or type."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, Iterable):
        items = {json.dumps(_plain(v), sort_keys=True): _plain(v) for v in value}
        return [items[k] for k in sorted(items)]
    return repr(value)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(map(_show, value)) or "none"
    return json.dumps(value) if isinstance(value, str) else str(value)
