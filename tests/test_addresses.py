"""Unit tests of `crawler.urls.addresses`: which addresses a crawl of public sites may not reach."""

from __future__ import annotations

import pytest

from crawler.urls.addresses import private_kind


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private (RFC 1918)"), ("172.16.0.1", "private (RFC 1918)"),
    ("172.31.255.255", "private (RFC 1918)"), ("192.168.1.1", "private (RFC 1918)"),
    ("169.254.169.254", "link-local (cloud metadata lives here)"),
    ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("fd00:ec2::254", "unique local (ULA)"), ("fc00::1", "unique local (ULA)"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("100.64.0.1", "shared carrier NAT (RFC 6598)"),
    ("224.0.0.1", "multicast"), ("255.255.255.255", "reserved"),
    # IPv6 spellings that reach an IPv4 address: judged by the address they reach.
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254",
                                       "link-local (cloud metadata lives here)"),
    ("2002:7f00:1::", "loopback"), ("64:ff9b::a00:1", "private (RFC 1918)"),
    ("localhost", "not an IP address"),
])
def test_non_public_addresses_are_named(address: str, kind: str) -> None:
    assert private_kind(address) == kind


@pytest.mark.parametrize("address", [
    "93.184.215.14", "8.8.8.8", "172.15.255.255", "172.32.0.1", "192.169.0.1", "100.128.0.1",
    "198.51.100.7", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
])
def test_public_addresses_pass(address: str) -> None:
    assert private_kind(address) is None
