"""DNS for the crawl's connector: names the crawl answers itself (`--resolve`), c-ares for
the rest."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import AsyncResolver


class StaticResolver(AbstractResolver):
    """Answers configured names itself (like curl --resolve), asks c-ares for the rest."""

    def __init__(self, overrides: Mapping[str, str]) -> None:
        self._overrides = {host.lower(): addr for host, addr in overrides.items()}
        self._fallback = AsyncResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addr = self._lookup(host.lower())
        if addr is None:
            return await self._fallback.resolve(host, port, family)
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        return [ResolveResult(hostname=host, host=addr, port=port, family=fam, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    def _lookup(self, host: str) -> str | None:
        """An exact entry, else the closest "*.domain" wildcard entry."""
        addr = self._overrides.get(host)
        while addr is None and "." in host:
            host = host.split(".", 1)[1]
            addr = self._overrides.get(f"*.{host}")
        return addr

    async def close(self) -> None:
        await self._fallback.close()
