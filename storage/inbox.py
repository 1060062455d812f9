"""The durable inbox: every update from Telegram is on disk before Telegram hears it arrived.

Table: inbox. A row is written when an update is fetched, its payload cleared when it has
been handled; rows that were never finished are handled again at start, in update_id order.

With several processes on one database (storage/coordination.py), a row also says whose
update it is (`person_id`) and which process took it (`taken_by`): a process that dies
leaves its rows to the others (`orphans`), and whoever handles a person's update first
handles that person's older ones still waiting, in order (`take_waiting`).
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

    def __init__(
        self, db: Database, now: Callable[[], datetime], process: int | None = None
    ) -> None:
        self._db, self._now = db, now
        self.process = process  # this process's mark on the rows it takes (shared databases)
        self._done_soon: list[int] = []
        self._writing: asyncio.TimerHandle | None = None
        # One flush at a time: a flush returns once every mark left before it is written,
        # including those a flush already under way took (closing, a checkpoint).
        self._flushing = asyncio.Lock()

    async def record(self, update_id: int, payload: str, person_id: int | None = None) -> bool:
        """Records an update; False if this update_id was seen before (a replay)."""
        return bool(await self.record_batch([(update_id, payload, person_id)]))

    async def record_batch(self, updates: Sequence[tuple[int, str, int | None]]) -> set[int]:
        """Records a batch of updates (id, payload, whose) in one transaction (one
        getUpdates answer); returns the ids not seen before (the others are redeliveries)."""
        if not updates:
            return set()
        received = to_db(self._now())
        rows = ", ".join("(?, ?, ?, ?, ?)" for _ in updates)
        params = [
            value
            for id_, payload, person in updates
            for value in (id_, payload, received, person, self.process)
        ]
        found = await self._db.execute_returning(
            "INSERT INTO inbox (update_id, payload, received_at, person_id, taken_by)"
            f" VALUES {rows} ON CONFLICT DO NOTHING RETURNING update_id",
            params,
        )
        return {int(row[0]) for row in found}

    async def mark_done(self, update_id: int) -> None:
        """Marks an update handled and forgets its content, and whose it was."""
        await self._db.execute(
            "UPDATE inbox SET done_at = ?, payload = NULL, person_id = NULL"
            " WHERE update_id = ? AND done_at IS NULL",
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
        """Writes the done-marks left for later, in one transaction, and returns once they,
        and any a flush under way took, are on disk."""
        if self._writing is not None:
            self._writing.cancel()
            self._writing = None
        async with self._flushing:
            ids, self._done_soon = self._done_soon, []
            if not ids:
                return
            marks = ", ".join("?" for _ in ids)
            try:
                await self._db.execute(
                    "UPDATE inbox SET done_at = ?, payload = NULL, person_id = NULL"
                    f" WHERE update_id IN ({marks})"
                    " AND done_at IS NULL",
                    (to_db(self._now()), *ids),
                )
            except Exception:  # they are recognised as applied after a restart
                logger.exception("Could not mark %s handled updates done", len(ids))

    async def unfinished(self) -> list[tuple[int, str]]:
        """Updates recorded but never handled, oldest first. With several processes, only
        those no live process has taken (`orphans`), which this one takes."""
        if self.process is not None:
            return await self.orphans()
        rows = await self._db.fetch_all(
            "SELECT update_id, payload FROM inbox WHERE done_at IS NULL ORDER BY update_id"
        )
        return [(int(r["update_id"]), str(r["payload"])) for r in rows]

    async def orphans(self) -> list[tuple[int, str]]:
        """Takes the unfinished updates of processes that are gone (PostgreSQL: their
        connection is no longer among the server's), oldest first."""
        rows = await self._db.execute_returning(
            "UPDATE inbox SET taken_by = ? WHERE done_at IS NULL AND (taken_by IS NULL"
            " OR taken_by NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL))"
            " RETURNING update_id, payload",
            (self.process,),
        )
        return sorted((int(r["update_id"]), str(r["payload"])) for r in rows)

    async def take_waiting(self, person_id: int, update_id: int) -> list[tuple[int, str]]:
        """Takes a person's unfinished updates up to this one, oldest first: whoever handles
        the person now (holding their lock) handles the older ones first, whichever process
        recorded them. This update is among them unless another process finished it."""
        rows = await self._db.execute_returning(
            # This one by its id too: a row recorded before inbox rows said whose they were.
            "UPDATE inbox SET taken_by = ? WHERE done_at IS NULL"
            " AND (update_id = ? OR (person_id = ? AND update_id < ?))"
            " RETURNING update_id, payload",
            (self.process, update_id, person_id, update_id),
        )
        return sorted((int(r["update_id"]), str(r["payload"])) for r in rows)

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
