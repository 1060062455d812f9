"""The durable inbox: every update from Telegram is on disk before Telegram hears it arrived.

Table: inbox. A row is written when an update is fetched, its payload cleared when it has
been handled; rows that were never finished are handled again at start, in update_id order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from storage.db import Database
from storage.times import to_db

logger = logging.getLogger(__name__)

# How soon done-marks left for later are written, together (`mark_done_soon`).
DONE_MARKS_EVERY = 0.05
# Handled updates forgotten per transaction by `prune`.
PRUNE_BATCH = 5000


class Inbox:
    """Receipt and completion of raw updates, keyed by Telegram's update_id."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db, self._now = db, now
        self._done_soon: list[int] = []
        self._writing: asyncio.TimerHandle | None = None

    async def record(self, update_id: int, payload: str) -> bool:
        """Records an update; False if this update_id was seen before (a replay)."""
        changed = await self._db.execute(
            "INSERT OR IGNORE INTO inbox (update_id, payload, received_at) VALUES (?, ?, ?)",
            (update_id, payload, to_db(self._now())),
        )
        return changed > 0

    async def record_batch(self, updates: Sequence[tuple[int, str]]) -> set[int]:
        """Records a batch of updates (one getUpdates answer) in one transaction; returns the
        ids not seen before (the others are redeliveries)."""
        if not updates:
            return set()
        received = to_db(self._now())
        rows = ", ".join("(?, ?, ?)" for _ in updates)
        params = [value for id_, payload in updates for value in (id_, payload, received)]
        found = await self._db.execute_returning(
            f"INSERT OR IGNORE INTO inbox (update_id, payload, received_at) VALUES {rows}"
            " RETURNING update_id",
            params,
        )
        return {int(row[0]) for row in found}

    async def mark_done(self, update_id: int) -> None:
        """Marks an update handled and forgets its content."""
        await self._db.execute(
            "UPDATE inbox SET done_at = ?, payload = NULL WHERE update_id = ? AND done_at IS NULL",
            (to_db(self._now()), update_id),
        )

    def mark_done_soon(self, update_id: int) -> None:
        """Marks an update handled a moment later, with others in one commit: for an update
        whose effects are already on disk with the person's session (which says it was
        applied), so a mark lost in a crash only means it is recognised at start, not
        redone."""
        self._done_soon.append(update_id)
        if self._writing is None:
            loop = asyncio.get_running_loop()
            self._writing = loop.call_later(
                DONE_MARKS_EVERY, lambda: loop.create_task(self.flush(), name="inbox-done-marks")
            )

    async def flush(self) -> None:
        """Writes the done-marks left for later, in one transaction."""
        if self._writing is not None:
            self._writing.cancel()
            self._writing = None
        ids, self._done_soon = self._done_soon, []
        if not ids:
            return
        marks = ", ".join("?" for _ in ids)
        try:
            await self._db.execute(
                f"UPDATE inbox SET done_at = ?, payload = NULL WHERE update_id IN ({marks})"
                " AND done_at IS NULL",
                (to_db(self._now()), *ids),
            )
        except Exception:  # they are recognised as applied after a restart
            logger.exception("Could not mark %s handled updates done", len(ids))

    async def unfinished(self) -> list[tuple[int, str]]:
        """Updates recorded but never handled, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT update_id, payload FROM inbox WHERE done_at IS NULL ORDER BY update_id"
        )
        return [(int(r["update_id"]), str(r["payload"])) for r in rows]

    async def prune(self, before: datetime, batch: int = PRUNE_BATCH) -> int:
        """Forgets handled updates older than `before` (Telegram redelivers for 24 h at most),
        `batch` rows a transaction, so that updates are handled in between; returns how many.
        """
        cutoff, total = to_db(before), 0
        while True:
            deleted = await self._db.execute(
                "DELETE FROM inbox WHERE update_id IN (SELECT update_id FROM inbox"
                " WHERE done_at IS NOT NULL AND done_at < ? ORDER BY update_id LIMIT ?)",
                (cutoff, batch),
            )
            total += deleted
            if deleted < batch:
                return total
