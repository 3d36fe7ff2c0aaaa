"""What the frontier holds: a leased request to fetch, or an origin's robots.txt to fetch."""

from __future__ import annotations

from dataclasses import dataclass

from yarl import URL

from crawler.urls.canon import CanonicalURL
from crawler.urls.origin import Origin
from storage import LeasedRequest


@dataclass(slots=True)
class Job:
    """A leased request: its canonical URL, parsed once (the fetcher's request), and its
    politeness key."""

    lease: LeasedRequest
    key: CanonicalURL
    url: URL  # the parsed view of `key`
    host: str


@dataclass(slots=True)
class RobotsJob:
    """Fetch an origin's robots.txt; the origin's requests wait for it, outside the frontier."""

    origin: Origin
    url: URL
    host: str


Work = Job | RobotsJob
