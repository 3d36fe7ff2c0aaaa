"""Which network addresses a crawl may connect to. Pure decisions, no I/O.

A crawl of public sites must not be steered into private networks (loopback, RFC 1918, ULA,
link-local and the cloud metadata address, ...) by a link, a redirect or a DNS answer. The
fetcher asks `private_kind` of every address it is about to connect to, so a name that
resolves to a public address once and to a private one later (DNS rebinding) is caught too.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NETWORKS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared carrier NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "unique local (ULA)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_BLOCKED = tuple((ipaddress.ip_network(net), kind) for net, kind in _NETWORKS)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def private_kind(address: str) -> str | None:
    """What kind of non-public address this is ("loopback", ...), or None if it is public.
    Text that is not an IP address is refused as "not an IP address"."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.partition("%")[0])  # no zone id
    except ValueError:
        return "not an IP address"
    for inner in _embedded_ipv4(ip):
        kind = private_kind(str(inner))
        if kind is not None:
            return kind
    for network, kind in _BLOCKED:
        if ip.version == network.version and ip in network:
            return kind
    return None


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address reaches: mapped (::ffff:a.b.c.d), 6to4 and NAT64."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found
