"""Which hosts a crawl may visit."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from yarl import URL


class Scope:
    """Allowed hosts and their subdomains. Ports are ignored (one site, several ports).

    A leading "www." is dropped from the hosts given, so a crawl started at www.example.org
    also follows example.org and docs.example.org, the way a site's own links go.
    """

    def __init__(self, hosts: Iterable[str], *, subdomains: bool = True) -> None:
        self._subdomains = subdomains
        self._hosts = frozenset(_strip_www(h.lower().rstrip(".")) for h in hosts if h)
        # IP addresses match only themselves; names also match their subdomains.
        self._domains = frozenset(h for h in self._hosts if not _is_ip(h))

    @classmethod
    def of_urls(cls, urls: Iterable[URL], *, subdomains: bool = True) -> Scope:
        return cls((u.host for u in urls if u.host), subdomains=subdomains)

    @property
    def hosts(self) -> frozenset[str]:
        return self._hosts

    def allows(self, host: str) -> bool:
        """`host` as yarl's `URL.host` gives it: lower-case, IDNA-decoded, no port."""
        if host in self._hosts:
            return True
        if not self._subdomains:
            return host.startswith("www.") and host[4:] in self._hosts
        # Walk up the labels: a.b.example.org -> b.example.org -> example.org -> org
        dot = host.find(".")
        while dot != -1:
            host = host[dot + 1 :]
            if host in self._domains:
                return True
            dot = host.find(".")
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") and host.count(".") >= 2 else host
