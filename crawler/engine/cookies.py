"""The crawl's session between the transport and the store: the jar's cookies are kept in the
state file, so a resumed crawl is still logged in.

The transport counts the responses that set cookies; after each fetch (`after_fetch`) a moved
count hands the cookies that changed (set, or gone) to the store, before the outcome of the
response that set them is recorded: a commit never holds an outcome without the cookies its
response set. A response costs the cookies it set, never the whole jar.
"""

from __future__ import annotations

from crawler.http.transport import Cookie, Transport
from storage import Store, StoredCookie


class CookieKeeper:
    def __init__(self, transport: Transport, store: Store) -> None:
        self._transport = transport
        self._store = store
        self.seen = transport.cookie_changes

    async def restore(self) -> int:
        """Put the cookies kept by earlier runs back in the jar; returns how many."""
        kept = await self._store.cookies()
        self._transport.load_cookies(Cookie(*row) for row in kept)
        self._transport.changed_cookies()  # what the store holds already
        self.seen = self._transport.cookie_changes
        return len(kept)

    def after_fetch(self) -> None:
        changes = self._transport.cookie_changes
        if changes != self.seen:
            self.seen = changes
            kept, gone = self._transport.changed_cookies()
            self._store.change_cookies([StoredCookie(
                c.name, c.value, c.domain, c.path, c.expires, c.secure, c.http_only,
                c.host_only) for c in kept], gone)
