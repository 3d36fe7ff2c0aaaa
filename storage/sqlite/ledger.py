"""The ledger is shared by the stores: see `storage.ledger`."""

from __future__ import annotations

from storage.ledger import MAX_PENDING_NEW, CookieChanges, Ledger, Tally, cookie_key

__all__ = ["MAX_PENDING_NEW", "CookieChanges", "Ledger", "Tally", "cookie_key"]
