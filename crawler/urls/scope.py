"""Which hosts and ports a crawl may visit: the one scope decision every request passes."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from yarl import URL

DEFAULT_PORTS = frozenset({80, 443})
"""http's and https's own ports: a site may move from one scheme to the other."""


class Scope:
    """Allowed hosts and their subdomains, on allowed ports.

    A leading "www." is dropped from the hosts given, so a crawl started at www.example.org
    also follows example.org and docs.example.org, the way a site's own links go. The ports
    are the start URLs' own and 80 and 443: another port of the same host is another server
    (an admin console, a database's HTTP interface), which a link must not steer us to.
    """

    def __init__(self, hosts: Iterable[str], *, subdomains: bool = True,
                 ports: Iterable[int] = ()) -> None:
        self._subdomains = subdomains
        self._hosts = frozenset(_strip_www(h.lower().rstrip(".")) for h in hosts if h)
        # IP addresses match only themselves; names also match their subdomains.
        self._domains = frozenset(h for h in self._hosts if not _is_ip(h))
        self._ports = DEFAULT_PORTS | frozenset(ports)

    @classmethod
    def of_urls(cls, urls: Iterable[URL], *, subdomains: bool = True,
                ports: Iterable[int] = ()) -> Scope:
        """The scope of start URLs: their hosts, their ports, and `ports` besides."""
        urls = list(urls)
        return cls((u.host for u in urls if u.host), subdomains=subdomains,
                   ports={*ports, *(u.port for u in urls if u.port is not None)})

    @property
    def ports(self) -> frozenset[int]:
        return self._ports

    def allows_url(self, url: URL) -> bool:
        return url.host is not None and url.port is not None \
            and self.allows(url.host, url.port)

    def allows(self, host: str, port: int) -> bool:
        """`host` as yarl's `URL.host` gives it (lower-case, IDNA-decoded), `port` as its
        `URL.port` does (the scheme's default when none is written)."""
        return port in self._ports and self._allows_host(host)

    def _allows_host(self, host: str) -> bool:
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
