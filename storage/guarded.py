"""What both stores' writers do around applying a batch of outcomes in their transaction:
one outcome that cannot be stored (text the database cannot hold, a number out of range)
must not fail the commit of all the others, again at every retry. The batch goes in under a
savepoint (one statement a batch); only if it fails, outcome by outcome, each under its
own, and one that still fails becomes a Failure of its request saying why."""

from __future__ import annotations

import logging

from storage.base import Failure, Outcome
from storage.ledger import Ledger

log = logging.getLogger("storage")


class GuardedWriter:
    """A writer sets `_ledger`, `data_errors` (what one outcome's data can make a statement
    fail with) and defines `_statement`, `_apply` and `storable`."""

    _ledger: Ledger
    data_errors: tuple[type[Exception], ...]

    async def _statement(self, sql: str) -> None:
        raise NotImplementedError

    async def _apply(self, batch: list[Outcome], run: int) -> None:
        raise NotImplementedError

    @staticmethod
    def storable(text: str) -> str:
        """`text` as the database can hold it."""
        raise NotImplementedError

    async def _apply_guarded(self, batch: list[Outcome], run: int) -> None:
        await self._statement("SAVEPOINT batch")
        counted = self._ledger.delta.copy()
        try:
            await self._apply(batch, run)
        except self.data_errors:
            await self._statement("ROLLBACK TO SAVEPOINT batch")
            self._ledger.delta = counted  # what the rolled-back statements counted is undone
            await self._apply_each(batch, run)

    async def _apply_each(self, batch: list[Outcome], run: int) -> None:
        """Apply outcomes one at a time. Only when a whole batch failed: slow, and rare."""
        for outcome in batch:
            await self._statement("SAVEPOINT outcome")
            counted = self._ledger.delta.copy()
            try:
                await self._apply([outcome], run)
            except self.data_errors as exc:
                await self._statement("ROLLBACK TO SAVEPOINT outcome")
                self._ledger.delta = counted
                reason = self.storable(f"this request's outcome cannot be stored: {exc}")
                log.warning("request %d failed: store: %s", outcome.request_id, reason,
                            extra={"reason": f"store: {reason}"})
                await self._apply([Failure(outcome.request_id, "store", reason)], run)
            await self._statement("RELEASE SAVEPOINT outcome")
